"""Run the operator: kopf standalone (no peering: one operator per cluster), cluster-wide, as its own
ServiceAccount, with the admission webhook served from the certificate `setup` issued."""

from __future__ import annotations

import logging
import os
import ssl

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.sovereign_operator import handlers  # noqa: F401  (registers the handlers with kopf)
from operators.sovereign_operator.credentials import Credentials
from operators.sovereign_operator.kube import api_client, api_error
from operators.sovereign_operator.runtime import OperatorConfig, Runtime
from sovereign.errors import BadInput, SovereignError

log = logging.getLogger(__name__)
ADMIN_GROUP = "system:masters"


def identity(credentials: Credentials) -> tuple[str, list[str]]:
    """Who the API server says the kubeconfig is (SelfSubjectReview)."""
    api = client.AuthenticationV1Api(api_client(credentials.kubeconfig))
    try:
        review = api.create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    except ApiException as exc:
        raise SovereignError(
            f"the API server did not accept the operator's credentials: {api_error(exc)}"
        ) from None
    info = review.status.user_info
    return str(info.username), list(info.groups or [])


def settings(credentials: Credentials) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    # Progress and the last handled spec live in status: the operator may write statuses, not specs.
    configured.persistence.progress_storage = kopf.StatusProgressStorage()
    configured.persistence.diffbase_storage = kopf.StatusDiffBaseStorage()
    # Decisions are recorded as Events by the operator itself; kopf's per-handler chatter is not.
    configured.posting.level = logging.WARNING
    configured.execution.max_workers = 16
    configured.admission.server = webhook_server(credentials)
    return configured


def webhook_server(credentials: Credentials, port: int | None = None) -> kopf.WebhookServer:
    """The server the admission webhook is served from: kopf's, with the certificate `setup` issued, on
    the port `setup` registered (or `port`: the admission benchmark serves a no-op beside it this way)."""
    webhook = credentials.webhook
    return kopf.WebhookServer(
        addr=webhook["host"],
        port=port or int(webhook["port"]),
        host=webhook["host"],
        certfile=str(credentials.cert),
        pkeyfile=str(credentials.key),
        cafile=str(credentials.ca),
        # Only the API server may call: it presents a client certificate from the same CA (the dev control
        # plane's admission configuration; in a cluster, the API server's webhook kubeconfig).
        verify_mode=ssl.CERT_REQUIRED,
        verify_cafile=str(credentials.ca),
    )


def run(credentials: Credentials, config: OperatorConfig, liveness_endpoint: str | None = None) -> None:
    user, groups = identity(credentials)
    if ADMIN_GROUP in groups:
        raise BadInput(
            f"refusing to run as {user} ({ADMIN_GROUP}): the operator runs as its own ServiceAccount; "
            "run 'sovereign operator setup --out DIR' as an administrator and pass --credentials DIR"
        )
    # kopf and the Kubernetes client both read the operator's kubeconfig from here.
    os.environ["KUBECONFIG"] = str(credentials.kubeconfig)
    runtime = Runtime.build(config)
    log.info("sovereign operator starting as %s: standalone (no peering), cluster-wide", user)
    kopf.run(
        settings=settings(credentials),
        standalone=True,
        clusterwide=True,
        memo=kopf.Memo(runtime=runtime),
        liveness_endpoint=liveness_endpoint,
    )
