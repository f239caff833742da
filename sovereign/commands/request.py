"""`sovereign request submit FILE.yaml | status NAME`: a contractor asks for an accredited cluster.

The request is a ClusterRequest object; the API server validates it against the CRD's schema (its
message names the field), and the operator decides it: screening, eligibility and accreditation through
the policy. `status` waits for that decision and shows it with every reason and citation.
Exit codes: 0 approved (or submitted), 1 denied or no decision in time, 2 bad input.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from sovereign import vocabulary as k8s
from sovereign.errors import BadInput, SovereignError

app = typer.Typer(
    no_args_is_help=True, help="Ask for an accredited sovereign cluster and follow the decision."
)
_out = Console(soft_wrap=True, highlight=False)

KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(envvar="KUBECONFIG", exists=True, dir_okay=False, help="kubeconfig (default: $KUBECONFIG)."),
]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the request.")]
DECIDED = (k8s.PHASE_APPROVED, k8s.PHASE_DENIED)


def _api(kubeconfig: Path | None) -> Any:
    from kubernetes import client

    from operators.sovereign_operator.kube import api_client

    return client.CustomObjectsApi(api_client(kubeconfig))


def _load(file: Path) -> dict[str, Any]:
    try:
        docs = [doc for doc in yaml.safe_load_all(file.read_text()) if doc is not None]
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{file}: malformed YAML: {exc}") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise BadInput(f"{file}: expected exactly one ClusterRequest document, found {len(docs)}")
    doc = docs[0]
    if doc.get("apiVersion") != k8s.API_VERSION or doc.get("kind") != k8s.CLUSTER_REQUEST:
        raise BadInput(
            f"{file}: apiVersion/kind is {doc.get('apiVersion')}/{doc.get('kind')}: "
            f"expected {k8s.API_VERSION}/{k8s.CLUSTER_REQUEST}"
        )
    if not (doc.get("metadata") or {}).get("name"):
        raise BadInput(f"{file}: metadata.name is missing: name the request")
    # YAML dates (expires: 2027-06-30) are dates to PyYAML; the API wants the text.
    return json.loads(json.dumps(doc, default=str))


def _refusal(exc: Any) -> str:
    from operators.sovereign_operator.kube import api_error

    return api_error(exc)


@app.command()
def submit(
    file: Annotated[
        Path, typer.Argument(help="ClusterRequest YAML (see operators/examples/clusterrequests/).")
    ],
    namespace: NamespaceOpt = "default",
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Submit a ClusterRequest; nothing is created when the API server refuses it (exit 2)."""
    from kubernetes.client.exceptions import ApiException

    doc = _load(file)
    namespace = doc["metadata"].get("namespace") or namespace
    doc["metadata"]["namespace"] = namespace
    try:
        _api(kubeconfig).create_namespaced_custom_object(k8s.GROUP, k8s.VERSION, namespace, k8s.REQUESTS, doc)
    except ApiException as exc:
        if exc.status in (400, 403, 404, 409, 422):
            raise BadInput(f"{file}: refused: {_refusal(exc)}") from None
        raise  # the API server's own failure (its webhook down...): the CLI's entry point says what it is
    name = doc["metadata"]["name"]
    _out.print(f"clusterrequest {namespace}/{name} submitted")
    _out.print(f"  follow the decision: sovereign request status {name} --namespace {namespace}")


def _show(request: dict[str, Any]) -> None:
    # Policy text may hold square brackets, which rich would take for markup.
    from rich.markup import escape

    status = request.get("status") or {}
    meta = request["metadata"]
    decision = status.get("decision") or {}
    _out.print(f"clusterrequest {meta['namespace']}/{meta['name']}: [bold]{status.get('phase')}[/]")
    revision, engine, as_of = decision.get("revision"), decision.get("engine"), decision.get("asOf")
    _out.print(f"  policy revision {revision} ({engine}), as of {as_of}")
    for reason in status.get("reasons") or []:
        _out.print(
            f"  [red]{reason['code']}[/] ({escape(str(reason.get('model')))}): {escape(reason['message'])}"
        )
        _out.print(f"      citation: {escape(reason['citation'])}")
    for obligation in status.get("obligations") or []:
        _out.print(f"  obligation {obligation['code']}: {escape(obligation['message'])}")
        _out.print(f"      citation: {escape(obligation['citation'])}")
    if cluster := status.get("sovereignCluster"):
        _out.print(f"  SovereignCluster {cluster} created")


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="The ClusterRequest's name.")],
    namespace: NamespaceOpt = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the decision.", min=0)] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the request's status as JSON.")] = False,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Wait for the operator's decision and show it with its reasons and citations.
    Exit 0 approved, 1 denied (or no decision within --timeout), 2 no such request."""
    from kubernetes.client.exceptions import ApiException

    api = _api(kubeconfig)
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = api.get_namespaced_custom_object(k8s.GROUP, k8s.VERSION, namespace, k8s.REQUESTS, name)
        except ApiException as exc:
            if exc.status == 404:
                raise BadInput(
                    f"clusterrequest {namespace}/{name} not found: check the name and --namespace"
                ) from None
            raise
        phase = (request.get("status") or {}).get("phase")
        if phase in DECIDED or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if as_json:
        print(json.dumps(request.get("status") or {}, indent=2))
    elif phase in DECIDED:
        _show(request)
    if phase not in DECIDED:
        why = (request.get("status") or {}).get("conditions") or []
        detail = (
            "; ".join(f"{c.get('reason')}: {c.get('message')}" for c in why) or "is the operator running?"
        )
        raise SovereignError(
            f"clusterrequest {namespace}/{name} has no decision after {timeout:.0f} s ({detail})"
        )
    raise typer.Exit(0 if phase == k8s.PHASE_APPROVED else 1)
