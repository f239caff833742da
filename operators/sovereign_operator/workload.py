"""What a RayService as submitted would run, gathered as facts for the policy (`input.workload`).

Admission judges a RayService on the deployment(s) its serving args declare; these facts say whether that
is all it would run: every container image, every Ray runtime_env key, every Serve application builder
(import path), every path it sets that the operator never generates for a deployment (found by comparing
its shape with what `rayservice.desired` writes for the same deployment), and whether its serving args
carry the SovereignCluster's facts. The
policy decides what each means (policies/sovereign/rules/workload); nothing here refuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from operators.sovereign_operator import rayservice
from serving.args import ServingArgs
from sovereign.errors import BadInput
from sovereign.policy.subjects import cluster_facts, deployment_input

_RUNTIME_ENV = "runtime_env"
# Fields the policy judges as values (images, GPUs, replicas) or the operator toggles (suspend): their
# values may differ from the template; what matters there is judged elsewhere.
_VALUES = frozenset({"image", "resources", "replicas", "minReplicas", "maxReplicas", "suspend"})


def workload_facts(
    body: Mapping[str, Any],
    config: Mapping[str, Any],
    cluster: Mapping[str, Any],
    deployment: Mapping[str, Any],
    serving_args: list[ServingArgs],
) -> dict[str, Any]:
    """The `workload` facts of RayService `body`, whose spec.serveConfigV2 reads as `config`, on
    SovereignCluster `cluster`, whose serving args amount to `deployment` (the LlamaDeployment it stands
    for) and declare `serving_args`."""
    spec = body.get("spec") or {}
    apps = [app for app in config.get("applications") or [] if isinstance(app, Mapping)]
    return {
        "images": sorted({str(c.get("image")) for c in _containers(spec)}),
        "runtime_env": sorted({key for env in _runtime_envs(apps) for key in env}),
        "import_paths": sorted({str(app.get("import_path")) for app in apps}),
        "overrides": _overrides(spec, config, apps, cluster, deployment),
        "cluster_facts_match": all(_facts_match(args, cluster, body) for args in serving_args),
    }


def _pod_specs(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    ray_cluster = spec.get("rayClusterConfig") or {}
    groups = [ray_cluster.get("headGroupSpec") or {}, *(ray_cluster.get("workerGroupSpecs") or [])]
    for group in groups:
        yield (group.get("template") or {}).get("spec") or {}


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for pod in _pod_specs(spec):
        yield from pod.get("containers") or []
        yield from pod.get("initContainers") or []


def _runtime_envs(apps: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every runtime_env an application sets, its own and its deployments' (ray_actor_options)."""
    for app in apps:
        yield app.get(_RUNTIME_ENV) or {}
        for override in app.get("deployments") or []:
            yield ((override or {}).get("ray_actor_options") or {}).get(_RUNTIME_ENV) or {}


def _facts_match(args: ServingArgs, cluster: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """The args' cluster facts are the SovereignCluster's (GPUs in use aside: they move as deployments come
    and go, and the quota is judged at admission on live claims; the weights country is judged as given),
    and the namespace they name, if any, is the one the RayService runs in (every request re-checks the
    tenant on it; args written before they carried one re-check nothing there, admission having done so)."""
    namespace = (body.get("metadata") or {}).get("namespace")
    if args.policy.namespace not in (None, namespace):
        return False
    try:
        expected = cluster_facts(cluster, args.policy.cluster.weights_country)
    except BadInput:
        return False
    carried = args.policy.cluster.model_copy(update={"gpus_in_use": None})
    return carried == expected


def _overrides(
    spec: Mapping[str, Any],
    config: Mapping[str, Any],
    apps: list[Mapping[str, Any]],
    cluster: Mapping[str, Any],
    deployment: Mapping[str, Any],
) -> list[str]:
    """Paths `spec` sets that the operator's RayService for `deployment` would not have."""
    try:
        judged = deployment_input(cluster, deployment)
    except BadInput:
        return []  # the deployment itself cannot be judged: admission refuses it on that
    # The spec `rayservice.desired` writes, with its Serve config as data (the image is a value: any does).
    template_config = rayservice.serve_document(deployment, judged)
    pod_labels = rayservice.labels(deployment, cluster)
    template = {
        "serveConfigV2": template_config,
        "rayClusterConfig": rayservice.ray_cluster_config(deployment, pod_labels, "image"),
    }
    found = _extra("spec.rayClusterConfig", spec.get("rayClusterConfig"), template["rayClusterConfig"])
    found += [f"spec.{key}" for key in spec if key not in template]
    found += [f"spec.serveConfigV2.{key}" for key in config if key not in template_config]
    template_app = {key for key in template_config["applications"][0] if key != _RUNTIME_ENV}
    for index, app in enumerate(apps):
        extra = sorted(key for key in app if key not in template_app and key != _RUNTIME_ENV)
        found += [f"spec.serveConfigV2.applications[{index}].{key}" for key in extra]
    return found


def _extra(path: str, actual: Any, template: Any) -> list[str]:
    """Paths under `actual` that `template` does not have: keys it lacks, list items shaped like its first
    item (containers, worker groups), and any rayStartParams but the generated ones, as generated."""
    if path.endswith(".rayStartParams"):
        return [] if actual == template else [path]
    if isinstance(actual, Mapping) and isinstance(template, Mapping):
        found = []
        for key, value in actual.items():
            if key not in template:
                found.append(f"{path}.{key}")
            elif key not in _VALUES:
                found += _extra(f"{path}.{key}", value, template[key])
        return found
    if isinstance(actual, list) and isinstance(template, list) and template:
        return [p for index, item in enumerate(actual) for p in _extra(f"{path}[{index}]", item, template[0])]
    return []
