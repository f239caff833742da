"""kopf's handlers: thin adapters from kopf's causes to the runtime's reconciler, fleet, desk and admission.

Importing this module registers them with kopf's default registry. No handler needs a finalizer (deletions
are caught from watch events, and missed ones swept by the drift pass), so an operator that is gone never
leaves objects stuck in Terminating.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from operators.sovereign_operator import rayservice
from operators.sovereign_operator.admission import (
    LLAMA_WEBHOOK,
    RAYCLUSTER_WEBHOOK,
    RAYJOB_WEBHOOK,
    RAYSERVICE_WEBHOOK,
)
from operators.sovereign_operator.facts import ClusterClaims, claim_of, rayservice_claim
from operators.sovereign_operator.reconcile import Converged, StatusSink
from operators.sovereign_operator.runtime import Runtime
from sovereign.vocabulary import (
    CLUSTERS,
    DEPLOYMENTS,
    GROUP,
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    LLAMA_DEPLOYMENT,
    MANAGED_BY,
    RAY_GROUP,
    RAY_SERVICE,
    RAY_VERSION,
    RAYCLUSTERS,
    RAYJOBS,
    RAYSERVICES,
    REQUESTS,
    VERSION,
)

RETRY_S = 10.0


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of kopf's body view: the logic below may keep or change it."""
    return copy.deepcopy(dict(body))


def _reviewed(body: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's view of an object under admission review, as a dict without a copy: kopf parsed it from
    this one request, and a review only reads it (a deep copy was some 3 % of a RayService review)."""
    return dict(body)


def _runtime(memo: Any) -> Runtime:
    return memo.runtime  # type: ignore[no-any-return]


def _first(store: Iterable[Any] | None) -> Any:
    return next(iter(store or []), None)


def _deleted(type: str, **_: Any) -> bool:
    """kopf's filter for an event handler that acts on deletions only: every other event of the watch
    (most of them) is passed over in kopf's loop, without a hop to a handler thread."""
    return type == "DELETED"


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def _facts(
    runtime: Runtime, refs: Iterable[str], indexes: Mapping[str, Any], fresh: bool = False
) -> tuple[dict[str, Any], dict[str, ClusterClaims]]:
    """The clusters and claims for `refs`: the clusters from kopf's index (a handler's kwargs), the claims
    (the LlamaDeployments' and the direct RayServices') from the runtime's ledger. A cluster the index has
    not seen yet (created a moment ago, e.g. in the same `kubectl apply`) is read from the API server:
    absent means absent. `fresh` (admission) reads every cluster from the API server: the index follows the
    watch, which lags on a busy machine, and a cluster just switched to enforce was seen admitting as if it
    still warned (a read begun after the review arrived, shared by the reviews that arrived with it)."""
    clusters: dict[str, Any] = {}
    for ref in refs:
        indexed = None if fresh else _first(indexes["cluster_index"].get(ref))
        cluster = indexed or runtime.cluster_reads.get(ref)
        if cluster is not None:
            clusters[ref] = cluster
    return clusters, {ref: runtime.claims.on(ref) for ref in refs}


# --- lifecycle -------------------------------------------------------------------------------------------
@kopf.on.login()
def login_as_operator(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # The operator's own kubeconfig, named by $KUBECONFIG (runner.run sets it), read when kopf logs in
    # (again after a 401); the client library's auto-login would have fixed the path at import time.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def start_background_work(memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).start()


@kopf.on.cleanup()
def stop_background_work(memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).stop()


# --- indexes: what admission and single reconciles read instead of asking the API server ---------------
# Async: kopf runs them on every watch event of their kind, in its loop rather than through a handler thread.
@kopf.index(GROUP, VERSION, CLUSTERS)
async def cluster_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: _plain(body)}


# The claims are kept in the runtime's ledger, with each cluster's running sums, from the same place: kopf
# runs index functions on every watch event of their kind (the first listing included) before its handlers,
# so the ledger follows the watch as an index would. They index nothing in kopf's own stores (a pass over
# one of those per judgement was the cost the ledger removes); a deletion is taken off by its DELETED event.
@kopf.index(GROUP, VERSION, DEPLOYMENTS)
async def claim_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).claims.put(LLAMA_DEPLOYMENT, str(body.get("spec", {}).get("clusterRef")), claim_of(body))


@kopf.index(RAY_GROUP, RAY_VERSION, RAYSERVICES)
async def rayservice_claim_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    claims = _runtime(memo).claims
    direct = rayservice_claim(body)
    if direct is None:  # the operator's own (its LlamaDeployment claims it), or naming no cluster
        claims.drop(RAY_SERVICE, _key(body))
    else:
        claims.put(RAY_SERVICE, *direct)


@kopf.on.event(GROUP, VERSION, DEPLOYMENTS, when=_deleted)
async def forget_claim_of_deleted_deployment(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).claims.drop(LLAMA_DEPLOYMENT, _key(event["object"]))


@kopf.on.event(RAY_GROUP, RAY_VERSION, RAYSERVICES, when=_deleted)
async def forget_claim_of_deleted_rayservice(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).claims.drop(RAY_SERVICE, _key(event["object"]))


# --- LlamaDeployments ------------------------------------------------------------------------------------
@kopf.on.create(GROUP, VERSION, DEPLOYMENTS)
@kopf.on.update(GROUP, VERSION, DEPLOYMENTS, field="spec")
def reconcile_llama_deployment(
    body: kopf.Body,
    patch: kopf.Patch,
    reason: kopf.Reason,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    # A LlamaDeployment just created has no RayService yet (one there after all is read when its create is
    # refused as a conflict); its status goes out in kopf's own status patch: one write, not two.
    fresh = {} if reason == kopf.Reason.CREATE else None
    _settled(
        _converge(_runtime(memo), _plain(body), indexes, fresh, lambda _, status: patch.status.update(status))
    )


def _converge(
    runtime: Runtime,
    deployment: dict[str, Any],
    indexes: Mapping[str, Any],
    rayservices: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    status_to: StatusSink | None = None,
) -> Converged:
    """Judge one LlamaDeployment on its cluster's facts and bring its RayService and status in line
    (see Reconciler.converge for `rayservices` and `status_to`)."""
    ref = str(deployment["spec"].get("clusterRef"))
    clusters, claims = _facts(runtime, [ref], indexes)
    return runtime.reconciler.converge(
        runtime.single, [deployment], clusters, claims, rayservices, status_to=status_to
    )


def _settled(result: Converged) -> None:
    """Hand kopf back, to retry, what is not settled: refused writes and what the engine could not judge."""
    if result.failed:
        raise kopf.TemporaryError("the API server refused a change; retrying", delay=RETRY_S)
    if result.held:
        raise kopf.TemporaryError("the policy engine cannot judge now; held, judging again", delay=RETRY_S)


@kopf.on.event(GROUP, VERSION, DEPLOYMENTS, when=_deleted)
def remove_rayservice_of_deleted(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).reconciler.remove(event["object"])


# --- RayServices the operator owns: an edited one is restored at once ------------------------------------
@kopf.on.event(RAY_GROUP, RAY_VERSION, RAYSERVICES, labels={LABEL_MANAGED_BY: MANAGED_BY})
async def restore_edited_rayservice(
    event: kopf.RawEvent,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    """Someone changed the spec of a RayService a LlamaDeployment owns: converge that deployment now, which
    writes back exactly what was judged (its generation moved; status writes do not move it)."""
    obj = event["object"]
    runtime = _runtime(memo)
    changed = runtime.spec_changed(obj)  # every sighting is recorded: listing, creation, edits
    if event["type"] == "MODIFIED" and changed:
        # Only an edit takes a thread (to read its owner and converge it); the sightings are kept in kopf's
        # loop, with no hop to a handler thread for each.
        await asyncio.to_thread(_restore, runtime, obj, indexes)


def _restore(runtime: Runtime, obj: Mapping[str, Any], indexes: Mapping[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    owner = rayservice.owner(obj)
    deployment = runtime.kube.get_deployment(meta["namespace"], owner["name"]) if owner else None
    if deployment is None or deployment["metadata"]["uid"] != owner["uid"]:  # type: ignore[index]
        return  # its owner is gone: the drift sweep deletes it
    _converge(runtime, deployment, indexes)


# --- SovereignClusters: a change of facts or mode re-judges the cluster's deployments -------------------
@kopf.on.create(GROUP, VERSION, CLUSTERS)
@kopf.on.update(GROUP, VERSION, CLUSTERS, field="spec")
def rejudge_cluster_deployments(name: str, memo: kopf.Memo, **_: Any) -> None:
    _settled(_runtime(memo).fleet.converge(cluster=name))


@kopf.on.event(GROUP, VERSION, CLUSTERS, when=_deleted)
def rejudge_deleted_cluster_deployments(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).fleet.converge(cluster=event["object"]["metadata"]["name"])


# --- ClusterRequests -------------------------------------------------------------------------------------
# An event handler, not on.create: kopf's own retries need a status write, and a request whose status the
# operator may not write would never be tried again. The desk retries with backoff (cluster_requests.py);
# the first listing offers every request, so a restarted operator takes up what it had not settled.
@kopf.on.event(GROUP, VERSION, REQUESTS)
def decide_cluster_request(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] != "DELETED":
        _runtime(memo).desk.offer(_plain(event["object"]))


@kopf.on.event(GROUP, VERSION, REQUESTS, when=_deleted)
def withdraw_deleted_request(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).desk.withdraw(event["object"])


# --- admission -------------------------------------------------------------------------------------------
# Async on purpose: a sync handler would wait for kopf's handler thread pool, which reconciles fill while
# they create RayServices, whose admission then waits for a free thread: a deadlock until the webhook times
# out. Reviews run on the runtime's own admission threads instead.
@kopf.on.validate(GROUP, VERSION, DEPLOYMENTS, id=LLAMA_WEBHOOK, operations=["CREATE", "UPDATE"])
async def validate_llama_deployment(
    body: kopf.Body,
    old: kopf.Body | None,
    warnings: list[str],
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    runtime = _runtime(memo)

    def review() -> list[str]:
        new, previous = _reviewed(body), _reviewed(old) if old is not None else None
        clusters, claims = _facts(runtime, [str(new["spec"].get("clusterRef"))], indexes, fresh=True)
        return runtime.admission.review_deployment(new, previous, clusters, claims)

    warnings.extend(await asyncio.get_running_loop().run_in_executor(runtime.admission_pool, review))


@kopf.on.validate(RAY_GROUP, RAY_VERSION, RAYSERVICES, id=RAYSERVICE_WEBHOOK, operations=["CREATE", "UPDATE"])
async def validate_rayservice(
    body: kopf.Body,
    old: kopf.Body | None,
    warnings: list[str],
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    runtime = _runtime(memo)

    def review() -> list[str]:
        new, previous = _reviewed(body), _reviewed(old) if old is not None else None
        ref = str((new.get("metadata", {}).get("labels") or {}).get(LABEL_CLUSTER))
        clusters, claims = _facts(runtime, [ref], indexes, fresh=True)
        return runtime.admission.review_rayservice(new, previous, clusters, claims)

    warnings.extend(await asyncio.get_running_loop().run_in_executor(runtime.admission_pool, review))


@kopf.on.validate(RAY_GROUP, RAY_VERSION, RAYCLUSTERS, id=RAYCLUSTER_WEBHOOK, operations=["CREATE", "UPDATE"])
@kopf.on.validate(RAY_GROUP, RAY_VERSION, RAYJOBS, id=RAYJOB_WEBHOOK, operations=["CREATE", "UPDATE"])
async def validate_ray_workload(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    obj = _reviewed(body)

    def review() -> None:
        meta = obj.get("metadata") or {}
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), {})
        existing = (
            runtime.kube.get_rayservice(meta.get("namespace"), owner["name"]) if owner.get("name") else None
        )
        runtime.admission.review_ray_workload(obj, (existing or {}).get("metadata", {}).get("uid"))

    await asyncio.get_running_loop().run_in_executor(runtime.admission_pool, review)
