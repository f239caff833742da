"""One Pulumi resource type for every Kubernetes object: a dynamic provider on the `kubernetes` client.

The official provider (pulumi-resource-kubernetes) cannot be obtained on these machines, so this one
checks objects with a server-side dry run (the API server's schema refuses a bad one at preview), applies
them with server-side apply under one field manager, diffs the declared manifest (replace when the
object's identity changes, update otherwise), reads the live object back on refresh, deletes with
foreground propagation and waits until it is gone, and waits for CustomResourceDefinitions to be
Established and Deployments available before their dependents.

Inputs: `manifest` (the object), `connection` (kubeconfig, context, server) and, for objects the policy
pack judges, `policy_context` (what the decision needs besides the object itself; never applied).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import pulumi
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from kubernetes.dynamic.resource import Resource as ApiResource
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra.kube_api import Connection, dynamic_client

FIELD_MANAGER = "sovereign-pulumi"
WAIT_TIMEOUT_S = 120.0
_POLL_S = 0.5
T = TypeVar("T")


def identity(manifest: dict[str, Any]) -> dict[str, str]:
    """What makes two manifests the same Kubernetes object; a change of any of these means replace."""
    api_version = str(manifest["apiVersion"])
    metadata = manifest.get("metadata") or {}
    return {
        "group": api_version.rpartition("/")[0],
        "kind": str(manifest["kind"]),
        "namespace": str(metadata.get("namespace", "")),
        "name": str(metadata["name"]),
    }


def object_id(manifest: dict[str, Any]) -> str:
    ref = identity(manifest)
    where = f"{ref['namespace']}/{ref['name']}" if ref["namespace"] else ref["name"]
    return f"{ref['group'] or 'core'}/{ref['kind']}/{where}"


def diff_props(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """Replace when the object's identity or cluster changes, update when only its content does.

    Only the manifest and the cluster's server count: the kubeconfig path is how the cluster is reached,
    and the policy context is what the policy pack reads, neither is part of the object.
    """
    old_manifest, new_manifest = olds.get("manifest") or {}, news["manifest"]
    old_id, new_id = (identity(old_manifest) if old_manifest else {}), identity(new_manifest)
    replaces = [f"manifest.{key}" for key, value in new_id.items() if old_id.get(key) != value]
    if (olds.get("connection") or {}).get("server") != news["connection"]["server"]:
        replaces.append("connection.server")
    changed = bool(replaces) or normalise_numbers(old_manifest) != normalise_numbers(new_manifest)
    return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)


def normalise_numbers(value: Any) -> Any:
    """A plain copy of a document, its integral floats turned back into ints."""
    # Pulumi's wire format carries every number as a double: 1 comes back as 1.0, which the API server
    # refuses for integer fields. Nothing in the kubernetes client or the SDK undoes that, hence by hand.
    # The policy pack sees the same documents through read-only Mapping/Sequence proxies: plain dicts and
    # lists come out.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [normalise_numbers(item) for item in value]
    return value


def managed_view(applied: Any, live: Any) -> Any:
    """The live object cut down to the fields the applied manifest sets, so refresh sees drift there only.

    The Go client's Extract* apply configurations do this from managedFields; the Python client has no
    equivalent, so this walks the applied manifest instead (server defaults and status are left out).
    """
    if isinstance(applied, dict) and isinstance(live, dict):
        return {key: managed_view(value, live[key]) for key, value in applied.items() if key in live}
    if isinstance(applied, list) and isinstance(live, list) and len(applied) == len(live):
        return [managed_view(a, b) for a, b in zip(applied, live, strict=True)]
    return live


def _describe(exc: ApiException) -> str:
    """The API server's own message (its Status body), which names the field it refused."""
    try:
        message = json.loads(exc.body).get("message") or exc.body
    except (TypeError, ValueError, AttributeError):
        message = exc.body
    return f"HTTP {exc.status} {exc.reason}: {message}"


class KubeObjectProvider(ResourceProvider):
    """Create/update = server-side apply; delete = foreground deletion, waited for; read = live object."""

    # Nothing secret is captured: the provider needs no passphrase to be stored.
    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """A server-side dry-run apply, so the API server's schema refuses a bad object at preview."""
        manifest = normalise_numbers(news["manifest"])
        try:
            self._apply(Connection.from_props(news["connection"]), manifest, dry_run=True)
        except _NotYetCheckable:
            pass
        except RuntimeError as exc:
            return CheckResult(news, [CheckFailure("manifest", str(exc))])
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        manifest = normalise_numbers(props["manifest"])
        live = self._apply(Connection.from_props(props["connection"]), manifest)
        return CreateResult(object_id(manifest), self._outputs(props, manifest, live))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        manifest = normalise_numbers(news["manifest"])
        live = self._apply(Connection.from_props(news["connection"]), manifest)
        return UpdateResult(self._outputs(news, manifest, live))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_props(olds, news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        manifest = normalise_numbers(props["manifest"])
        conn = Connection.from_props(props["connection"])
        live = self._get(conn, manifest)
        if live is None:  # gone: an empty id tells the engine to drop it from the state
            return ReadResult("", {})
        return ReadResult(id_, self._outputs(props, managed_view(manifest, live), live))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        manifest = normalise_numbers(props["manifest"])
        conn = Connection.from_props(props["connection"])
        api, ref = self._resource(conn, manifest, wait=False), identity(manifest)
        if api is None:  # its kind is no longer served (its CRD is gone), so neither is the object
            return
        try:
            dynamic_client(conn).delete(
                api, name=ref["name"], namespace=ref["namespace"] or None, propagation_policy="Foreground"
            )
        except NotFoundError:
            return
        except ApiException as exc:
            raise RuntimeError(f"deleting {object_id(manifest)}: {_describe(exc)}") from None
        try:
            _wait(
                lambda: self._get(conn, manifest) is None,
                f"{object_id(manifest)} to be deleted (its finalizers need the garbage collector and "
                "namespace controller: is kube-controller-manager running?)",
            )
        except TimeoutError as exc:
            # A namespace says in its conditions why its content stays (e.g. a webhook it cannot call).
            live = self._get(conn, manifest) or {}
            said = [c.get("message") for c in (live.get("status") or {}).get("conditions") or []]
            raise TimeoutError("; ".join([str(exc), *filter(None, said)])) from None

    @staticmethod
    def _outputs(props: dict[str, Any], manifest: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        outs = {key: value for key, value in props.items() if key != "__provider"}
        return {**outs, "manifest": manifest, "uid": str((live.get("metadata") or {}).get("uid", ""))}

    @overload
    def _resource(self, conn: Connection, manifest: dict[str, Any]) -> ApiResource: ...
    @overload
    def _resource(self, conn: Connection, manifest: dict[str, Any], wait: bool) -> ApiResource | None: ...

    def _resource(self, conn: Connection, manifest: dict[str, Any], wait: bool = True) -> ApiResource | None:
        """The API resource serving the manifest's kind; `wait` for a CRD applied moments ago to be served."""
        client = dynamic_client(conn)

        def lookup() -> ApiResource | None:
            try:
                return client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
            except ResourceNotFoundError:
                client.resources.invalidate_cache()  # discovery is cached: a new CRD is not in it yet
                return None

        if not wait:
            return lookup() or lookup()
        return _wait(lookup, f"the API server to serve {manifest['apiVersion']} {manifest['kind']}")

    def _get(self, conn: Connection, manifest: dict[str, Any]) -> dict[str, Any] | None:
        ref, api = identity(manifest), self._resource(conn, manifest, wait=False)
        if api is None:
            return None
        try:
            live = dynamic_client(conn).get(api, name=ref["name"], namespace=ref["namespace"] or None)
        except NotFoundError:
            return None
        return dict(live.to_dict())

    def _apply(self, conn: Connection, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        ref = identity(manifest)
        api = self._resource(conn, manifest, wait=not dry_run)
        if api is None:
            raise _NotYetCheckable()
        try:
            live = dict(
                dynamic_client(conn)
                .server_side_apply(
                    api,
                    body=manifest,
                    name=ref["name"],
                    namespace=ref["namespace"] or None,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,  # the declared stack is the source of truth
                    dry_run="All" if dry_run else None,
                )
                .to_dict()
            )
        except ApiException as exc:
            if dry_run and exc.status == 404:  # its namespace is created by this same update
                raise _NotYetCheckable() from None
            verb = "checking (server-side dry run)" if dry_run else "applying"
            raise RuntimeError(f"{verb} {object_id(manifest)}: {_describe(exc)}") from None
        if dry_run:
            return live
        if wanted := _READY.get((ref["group"], ref["kind"])):
            state, ready = wanted
            _wait(lambda: ready(self._get(conn, manifest) or {}), f"{object_id(manifest)} to be {state}")
        return live


class _NotYetCheckable(Exception):
    """Its kind or namespace does not exist yet: the same update creates them before it."""


def _established(live: dict[str, Any]) -> bool:
    conditions = (live.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _available(live: dict[str, Any]) -> bool:
    status, spec = live.get("status") or {}, live.get("spec") or {}
    rolled_out = status.get("observedGeneration", 0) >= (live.get("metadata") or {}).get("generation", 1)
    return rolled_out and status.get("availableReplicas", 0) >= spec.get("replicas", 1)


# Kinds whose dependents need more than the object's existence: objects of a CRD need it Established,
# and a Deployment (the operator behind the admission webhook) must be serving before what it admits.
_READY: dict[tuple[str, str], tuple[str, Callable[[dict[str, Any]], bool]]] = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("Established", _established),
    ("apps", "Deployment"): ("available", _available),
}


def _wait(probe: Callable[[], T | None], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        if result := probe():
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(_POLL_S)


class KubeObject(Resource, module="sovereign", name="KubeObject"):
    """Any Kubernetes object, applied server-side (type pulumi-python:dynamic/sovereign:KubeObject)."""

    manifest: pulumi.Output[dict[str, Any]]
    uid: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        manifest: dict[str, Any],
        connection: Connection,
        policy_context: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        identity(manifest)  # a manifest without apiVersion, kind or name fails here, in the program
        props: dict[str, Any] = {"manifest": manifest, "connection": connection.as_props(), "uid": None}
        if policy_context is not None:
            props["policy_context"] = policy_context
        super().__init__(KubeObjectProvider(), name, props, opts)
