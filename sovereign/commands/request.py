"""`sovereign request submit FILE.yaml | status NAME | delete NAME`: a contractor asks for an accredited
cluster.

The request is a ClusterRequest object; the API server validates it against the CRD's schema (its
message names the field), and the operator decides it: screening, eligibility and accreditation through
the policy. `status` waits for that decision, saying while it waits what the request's own conditions and
Events say and whether an operator runs at all, and shows it with every reason and citation.
Exit codes: 0 approved (or submitted, deleted), 1 denied or no decision in time, 2 bad input or no
operator running.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from sovereign import vocabulary as k8s
from sovereign.devenv.state import attached_to
from sovereign.errors import BadInput, NotRunning, SovereignError
from sovereign.state_dir import state_root

app = typer.Typer(
    no_args_is_help=True, help="Ask for an accredited sovereign cluster and follow the decision."
)
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)  # the policy's words, as written

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
    name = doc["metadata"]["name"]
    try:
        _api(kubeconfig).create_namespaced_custom_object(k8s.GROUP, k8s.VERSION, namespace, k8s.REQUESTS, doc)
    except ApiException as exc:
        if exc.status == 409:
            raise BadInput(
                f"clusterrequest {namespace}/{name} already exists, and a request cannot be changed: see its "
                f"decision with `sovereign request status {name} -n {namespace}`, or withdraw it with "
                f"`sovereign request delete {name} -n {namespace}` and submit again"
            ) from None
        if exc.status in (400, 403, 404, 422):
            raise BadInput(f"{file}: refused: {_refusal(exc)}") from None
        raise  # the API server's own failure (its webhook down...): the CLI's entry point says what it is
    _out.print(f"clusterrequest {namespace}/{name} submitted")
    _out.print(f"  follow the decision: sovereign request status {name} --namespace {namespace}")


def _refuse_missing(exc: Any, namespace: str, name: str) -> None:
    if exc.status == 404:
        raise BadInput(
            f"clusterrequest {namespace}/{name} not found: check the name and --namespace"
        ) from None


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


class _Waiting:
    """What `status` says while the decision does not come: the request's own Decided condition and Events
    as they change, whether an operator runs against this API server (`sovereign operator run` records
    itself in the state dir, with the last error it met), and a line every PROGRESS_S."""

    PROGRESS_S = 10.0

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api.api_client)
        self.server = str(api.api_client.configuration.host)
        self.namespace, self.name = namespace, name
        self.started = time.monotonic()
        self.said: set[str] = set()
        self.next_progress = self.started + self.PROGRESS_S

    def _say(self, line: str) -> None:
        if line not in self.said:
            self.said.add(line)
            _err.print(f"  {line}")

    def operators(self) -> list[dict[str, Any]]:
        return [entry for entry in attached_to(self.server) if entry["name"] == "operator"]

    def _events(self, request: dict[str, Any]) -> list[Any]:
        from kubernetes.client.exceptions import ApiException

        uid = request["metadata"].get("uid")
        try:
            listed = self.core.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={self.name}"
            )
        except ApiException:
            return []  # events only add to what the status says
        return [e for e in listed.items if e.involved_object.uid == uid]

    def operator_error(self, request: dict[str, Any]) -> str | None:
        """The last error of the operator running here, when it came after the request was made."""
        created = request["metadata"].get("creationTimestamp")
        since = datetime.fromisoformat(created).timestamp() if created else 0.0
        for entry in self.operators():
            error = entry.get("last_error") or {}
            if error.get("time", 0.0) >= since:
                return f"operator (pid {entry['pid']}) failing: {error['message']}"
        return None

    def waiting_condition(self, request: dict[str, Any]) -> dict[str, Any] | None:
        conditions = (request.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == k8s.CONDITION_DECIDED), None)

    def show(self, request: dict[str, Any]) -> None:
        """Say what changed since the last look."""
        if not self.said:
            _err.print(f"waiting for the operator's decision on clusterrequest {self.namespace}/{self.name}")
        if not self.operators() and not request.get("status"):
            self._say(self._no_operator())
        if error := self.operator_error(request):
            self._say(error)
        if condition := self.waiting_condition(request):
            self._say(
                f"{condition['type']}={condition['status']} {condition['reason']}: {condition['message']}"
            )
        for event in self._events(request):
            self._say(f"event {event.type} {event.reason}: {event.message}")
        if time.monotonic() >= self.next_progress:
            self.next_progress += self.PROGRESS_S
            _err.print(f"  still waiting ({time.monotonic() - self.started:.0f} s)")

    def _no_operator(self) -> str:
        return (
            f"no operator is running against {self.server} (none has recorded itself in {state_root()}): "
            "start it, e.g. in another terminal: sovereign operator setup && sovereign operator run"
        )

    def failure(self, request: dict[str, Any], timeout: float) -> SovereignError:
        """Why no decision came within `timeout`, as the error the command ends with."""
        head = f"clusterrequest {self.namespace}/{self.name} has no decision after {timeout:.0f} s"
        if not self.operators() and not request.get("status"):
            return NotRunning(f"{head}: {self._no_operator()}")
        if error := self.operator_error(request):
            return SovereignError(f"{head}: {error}")
        if condition := self.waiting_condition(request):
            return SovereignError(f"{head}: {condition['reason']}: {condition['message']}")
        running = ", ".join(f"pid {entry['pid']}" for entry in self.operators())
        return SovereignError(
            f"{head}: the operator ({running or 'not on this machine'}) has not answered yet: "
            "wait longer (--timeout) or read its log"
        )


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="The ClusterRequest's name.")],
    namespace: NamespaceOpt = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the decision.", min=0)] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the request's status as JSON.")] = False,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Wait for the operator's decision and show it with its reasons and citations; while waiting, say on
    stderr what the request's conditions and Events say and whether an operator runs at all.
    Exit 0 approved, 1 denied (or no decision within --timeout), 2 no such request or no operator."""
    from kubernetes.client.exceptions import ApiException

    api = _api(kubeconfig)
    waiting = _Waiting(api, namespace, name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = api.get_namespaced_custom_object(k8s.GROUP, k8s.VERSION, namespace, k8s.REQUESTS, name)
        except ApiException as exc:
            _refuse_missing(exc, namespace, name)
            raise
        phase = (request.get("status") or {}).get("phase")
        if phase in DECIDED or time.monotonic() >= deadline:
            break
        waiting.show(request)
        time.sleep(0.5)
    if as_json:
        print(json.dumps(request.get("status") or {}, indent=2))
    elif phase in DECIDED:
        _show(request)
    if phase not in DECIDED:
        raise waiting.failure(request, timeout)
    raise typer.Exit(0 if phase == k8s.PHASE_APPROVED else 1)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="The ClusterRequest's name.")],
    namespace: NamespaceOpt = "default",
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Withdraw a ClusterRequest; the operator removes the SovereignCluster it made for it."""
    from kubernetes.client.exceptions import ApiException

    try:
        _api(kubeconfig).delete_namespaced_custom_object(
            k8s.GROUP, k8s.VERSION, namespace, k8s.REQUESTS, name
        )
    except ApiException as exc:
        _refuse_missing(exc, namespace, name)
        raise
    _out.print(f"clusterrequest {namespace}/{name} deleted (the operator removes the cluster made for it)")
