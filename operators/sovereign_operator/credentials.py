"""What an administrator prepares once so the operator runs under its own identity, never the admin's.

`setup` (as the administrator): applies the CRDs and RBAC, asks the API server for a ServiceAccount token
(TokenRequest), issues the webhook's serving certificate from a local CA, and registers the webhook.
The operator then runs with the folder it wrote, holding nothing more than its ServiceAccount may do:

    DIR/kubeconfig            the operator's ServiceAccount token, the API server and its CA
    DIR/webhook.crt, .key     the webhook's serving certificate (SAN = the webhook host)
    DIR/ca.crt                the CA that signed it (the API server trusts the webhook through it)
    DIR/webhook.json          where the webhook listens
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION
from kubernetes.dynamic import DynamicClient

from operators.manifests import operator_manifests
from operators.sovereign_operator.admission import webhook_configuration
from operators.sovereign_operator.kube import api_client, api_error
from sovereign.devenv.pki import LocalCA
from sovereign.errors import BadInput, SovereignError
from sovereign.vocabulary import OPERATOR_SERVICE_ACCOUNT

FIELD_MANAGER = "sovereign-operator-setup"
CERT_NAME = "sovereign-operator-webhook"


@dataclass(frozen=True)
class Credentials:
    folder: Path

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def cert(self) -> Path:
        return self.folder / "webhook.crt"

    @property
    def key(self) -> Path:
        return self.folder / "webhook.key"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def webhook(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / "webhook.json").read_text()))

    @classmethod
    def load(cls, folder: Path) -> Credentials:
        found = cls(folder)
        names = ["kubeconfig", "webhook.crt", "webhook.key", "ca.crt", "webhook.json"]
        if missing := [name for name in names if not (folder / name).is_file()]:
            raise BadInput(
                f"--credentials {folder}: missing {', '.join(missing)}: "
                "run 'sovereign operator setup --out DIR' as an administrator first"
            )
        return found


def _apply(dynamic: DynamicClient, doc: dict[str, Any]) -> None:
    resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    dynamic.server_side_apply(resource, body=doc, field_manager=FIELD_MANAGER, force_conflicts=True)


def _service_account_kubeconfig(admin_kubeconfig: Path | None, token: str) -> dict[str, Any]:
    """The admin kubeconfig's current cluster, with the ServiceAccount token as its only user."""
    default = os.environ.get("KUBECONFIG", KUBE_CONFIG_DEFAULT_LOCATION).split(os.pathsep)[0]
    source = admin_kubeconfig or Path(default).expanduser()
    doc = yaml.safe_load(source.read_text())
    context_name = doc.get("current-context")
    context = next(c["context"] for c in doc.get("contexts", []) if c["name"] == context_name)
    cluster = next(c for c in doc.get("clusters", []) if c["name"] == context["cluster"])
    namespace, name = OPERATOR_SERVICE_ACCOUNT
    user = f"system:serviceaccount:{namespace}:{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sovereign-operator", "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": "sovereign-operator",
    }


def setup(
    out: Path,
    ca_dir: Path,
    webhook_host: str,
    webhook_port: int,
    admin_kubeconfig: Path | None = None,
    token_seconds: int = 86_400,
) -> Credentials:
    """Prepare everything the operator needs (see the module docstring); safe to run again."""
    if not (ca_dir / "ca.crt").is_file() or not (ca_dir / "ca.key").is_file():
        raise BadInput(
            f"--ca-dir {ca_dir}: needs ca.crt and ca.key (a dev control plane's pki folder has both)"
        )
    api = api_client(admin_kubeconfig)
    dynamic = DynamicClient(api)
    try:
        for manifest in operator_manifests():
            for doc in yaml.safe_load_all(manifest.read_text()):
                if doc:
                    _apply(dynamic, doc)
        namespace, name = OPERATOR_SERVICE_ACCOUNT
        issued = client.CoreV1Api(api).create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": token_seconds}}
        )
    except ApiException as exc:
        raise SovereignError(f"operator setup failed: {api_error(exc)}") from None

    out.mkdir(parents=True, exist_ok=True)
    found = Credentials(out)
    found.kubeconfig.write_text(
        yaml.safe_dump(_service_account_kubeconfig(admin_kubeconfig, issued.status.token))
    )
    found.kubeconfig.chmod(0o600)
    ca = LocalCA(ca_dir)
    pair = ca.issue_server_cert(CERT_NAME, [webhook_host])
    shutil.move(pair.cert, found.cert)
    shutil.move(pair.key, found.key)
    found.ca.write_bytes(ca.pem)
    url = f"https://{webhook_host}:{webhook_port}"
    (out / "webhook.json").write_text(json.dumps({"host": webhook_host, "port": webhook_port, "url": url}))
    try:
        _apply(dynamic, webhook_configuration(url, ca.pem))
    except ApiException as exc:
        raise SovereignError(f"registering the admission webhook failed: {api_error(exc)}") from None
    return found
