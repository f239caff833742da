"""The few Kubernetes API calls the operator makes, on the official client, as its own ServiceAccount.

kopf talks to the API server for watching and its own bookkeeping; everything the operator decides to do
(RayServices, statuses, SovereignClusters, Events) goes through here, from kopf's handler threads and the
drift thread alike (the client's connection pool is thread-safe).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sovereign.vocabulary import (
    CLUSTERS,
    DEPLOYMENTS,
    GROUP,
    OPERATOR_COMPONENT,
    RAY_GROUP,
    RAY_VERSION,
    RAYSERVICES,
    REQUESTS,
    VERSION,
)


def api_client(
    kubeconfig: Path | None = None, context: str | None = None, retries: int | None = None
) -> client.ApiClient:
    """A client for `kubeconfig` (default: $KUBECONFIG or ~/.kube/config) and its `context` (default: its
    current one), sized for many threads; `retries` of a failed connection (default: urllib3's three)."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kubeconfig) if kubeconfig else None,
        context=context,
        client_configuration=configuration,
    )
    configuration.retries = retries
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def api_error(exc: ApiException) -> str:
    """The API server's own words, not the HTTP dump: for a validation error one line per field."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return f"{exc.status} {exc.reason}"
    causes = [c for c in (body.get("details") or {}).get("causes") or [] if c.get("field")]
    if causes:
        return "\n".join(f"{c['field']}: {c.get('message')}" for c in causes)
    return str(body.get("message") or f"{exc.status} {exc.reason}")


_T = TypeVar("_T")


class _Round(Generic[_T]):
    """One read, and every caller it answers."""

    def __init__(self) -> None:
        self.begun = threading.Event()  # the read before it has ended: every caller of it has arrived
        self.result: Future[_T] = Future()


class SharedReads(Generic[_T]):
    """Reads by name, each caller answered by a read begun no earlier than its own call (admission reads a
    SovereignCluster so, not trusting the watch): a caller arriving while a read of the name is under way
    waits for the next one, which begins as that one ends and answers everyone who arrived meanwhile.
    Reviews of one cluster at once cost a read per round, not one each (a GET per review was two API
    requests per LlamaDeployment, on the API server the rollout itself loads)."""

    def __init__(self, read: Callable[[str], _T]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._reading: dict[str, _Round[_T]] = {}
        self._next: dict[str, _Round[_T]] = {}

    def get(self, name: str) -> _T:
        with self._lock:
            if name not in self._reading:
                mine, leads = _Round[_T](), True
                mine.begun.set()
                self._reading[name] = mine
            else:
                leads = name not in self._next
                mine = self._next.setdefault(name, _Round[_T]())
        if leads:  # the first caller of a round reads for all of it, once the round before has ended
            mine.begun.wait()
            try:
                mine.result.set_result(self._read(name))
            except BaseException as exc:  # every caller of the round gets the failure it would have had
                mine.result.set_exception(exc)
            with self._lock:
                following = self._next.pop(name, None)
                if following is None:
                    del self._reading[name]
                else:
                    self._reading[name] = following
                    following.begun.set()
        return mine.result.result()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    def __init__(self, api: client.ApiClient, timeout_s: float | None = None) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.timeout_s = timeout_s  # of each list (None: the client's, which waits on a silent server)

    # --- reading -------------------------------------------------------------------------------------
    def list_all(self, plural: str, group: str = GROUP, version: str = VERSION) -> list[dict[str, Any]]:
        """Every object of a kind, in all namespaces (or cluster-scoped)."""
        listed = self.custom.list_cluster_custom_object(
            group, version, plural, _request_timeout=self.timeout_s
        )
        return list(listed.get("items") or [])

    def get_rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, RAYSERVICES, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, DEPLOYMENTS, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, REQUESTS, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_cluster_custom_object(GROUP, VERSION, CLUSTERS, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # --- RayServices ---------------------------------------------------------------------------------
    def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"]["namespace"]
        return self.custom.create_namespaced_custom_object(
            RAY_GROUP, RAY_VERSION, namespace, RAYSERVICES, body
        )

    def patch_rayservice(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            RAY_GROUP, RAY_VERSION, namespace, RAYSERVICES, name, patch
        )

    def restore_rayservice(self, namespace: str, name: str, operations: list[dict[str, Any]]) -> None:
        self.custom.patch_namespaced_custom_object(
            RAY_GROUP,
            RAY_VERSION,
            namespace,
            RAYSERVICES,
            name,
            operations,
            _content_type="application/json-patch+json",
        )

    def delete_rayservice(self, namespace: str, name: str, uid: str) -> None:
        # The uid precondition deletes exactly the object we meant, never a newer one of the same name.
        try:
            self.custom.delete_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, RAYSERVICES, name, body={"preconditions": {"uid": uid}}
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # --- sovereign objects ---------------------------------------------------------------------------
    def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; with `resource_version`, only if nobody changed it since."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, body
        )

    def create_cluster(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_cluster_custom_object(GROUP, VERSION, CLUSTERS, body)

    def delete_cluster(self, name: str, uid: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(
                GROUP, VERSION, CLUSTERS, name, body={"preconditions": {"uid": uid}}
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # --- events --------------------------------------------------------------------------------------
    def event(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Record a core/v1 Event about `obj` (cluster-scoped objects' events go to `default`)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = _now()
        body = {
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            # The API server refuses Event messages over 1 KiB.
            "message": message if len(message) <= 1024 else message[:1021] + "...",
            "source": {"component": OPERATOR_COMPONENT},
            "reportingComponent": OPERATOR_COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event(namespace, body)
