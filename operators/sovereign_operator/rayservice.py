"""The KubeRay RayService (ray.io/v1) a LlamaDeployment becomes.

`serveConfigV2` runs sovereign's Serve application, written by serving's own `serve_config` from its
`ServingArgs` model, so the config the data plane validates is exactly the one built here.
`rayClusterConfig` has a CPU-only head and one worker group of `replicas` pods with `gpusPerReplica` GPUs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from operators.sovereign_operator.weights_mounts import weights_path
from serving.args import DeploymentConfig, LLMConfig, ModelLoadingConfig, PolicyContext, ServingArgs
from serving.manifest import dump_serve_config, load_serve_config, serve_config
from sovereign.policy.decision_input import DecisionInput
from sovereign.vocabulary import (
    ANNOTATION_SPEC_HASH,
    API_VERSION,
    GPU_RESOURCE,
    LABEL_CLUSTER,
    LABEL_DEPLOYMENT,
    LABEL_END_USE,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_REGION,
    LABEL_TENANT,
    LLAMA_DEPLOYMENT,
    MANAGED_BY,
    RAY_API_VERSION,
    RAY_SERVICE,
)

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def label_value(text: str) -> str:
    """A label value from free text (HF ids have '/'): at most 63 characters, alphanumeric at both ends."""
    return _LABEL_VALUE.sub(".", text)[:63].strip("._-")


def serve_document(deployment: Mapping[str, Any], judged: DecisionInput) -> dict[str, Any]:
    """The Serve config (as data) of the RayService for `deployment`, judged on `judged`."""
    spec = deployment["spec"]
    gpus = int(spec.get("gpusPerReplica", 1))
    args = ServingArgs(
        llm_configs=[
            LLMConfig(
                model_loading_config=ModelLoadingConfig(
                    model_id=spec["model"],
                    model_source=weights_path(spec),
                ),
                deployment_config=DeploymentConfig(
                    num_replicas=int(spec.get("replicas", 1)),
                    ray_actor_options={"num_gpus": gpus} if gpus else {"num_cpus": 1},
                ),
            )
        ],
        policy=PolicyContext(
            cluster=judged.cluster,
            end_use=judged.end_use,
            gpus=judged.gpus,
            namespace=judged.namespace,
            weights_signer=judged.weights_signer,
        ),
    )
    return serve_config(args)


def _container(name: str, image: str, limits: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "image": image, "resources": {"limits": limits, "requests": limits}}


def labels(deployment: Mapping[str, Any], cluster: Mapping[str, Any]) -> dict[str, str]:
    meta, spec = deployment["metadata"], deployment["spec"]
    return {
        LABEL_REGION: label_value(str((cluster.get("spec") or {}).get("region", ""))),
        LABEL_CLUSTER: spec["clusterRef"],
        LABEL_MODEL: label_value(spec["model"]),
        LABEL_TENANT: meta["namespace"],
        LABEL_END_USE: spec["endUse"],
        LABEL_DEPLOYMENT: meta["name"],
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def ray_cluster_config(
    deployment: Mapping[str, Any], pod_labels: dict[str, str], image: str
) -> dict[str, Any]:
    """The RayService's rayClusterConfig for `deployment`: a CPU-only head, `replicas` GPU workers."""
    spec = deployment["spec"]
    replicas = int(spec.get("replicas", 1))
    gpus = int(spec.get("gpusPerReplica", 1))
    worker_limits = {"cpu": "4", "memory": "32Gi"}
    if gpus:
        worker_limits[GPU_RESOURCE] = str(gpus)
    return {
        "suspend": False,
        "headGroupSpec": {
            "rayStartParams": {"dashboard-host": "0.0.0.0", "num-gpus": "0"},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [_container("ray-head", image, {"cpu": "2", "memory": "8Gi"})]},
            },
        },
        "workerGroupSpecs": [
            {
                "groupName": "llama",
                "replicas": replicas,
                "minReplicas": replicas,
                "maxReplicas": replicas,
                # KubeRay's CRD defaults it: written as stored, the live object compares equal to this.
                "numOfHosts": 1,
                "rayStartParams": {},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {"containers": [_container("ray-worker", image, worker_limits)]},
                },
            }
        ],
    }


def desired(
    deployment: Mapping[str, Any], cluster: Mapping[str, Any], judged: DecisionInput, image: str
) -> dict[str, Any]:
    """The RayService for a LlamaDeployment allowed to run, owned by it (so Kubernetes' GC removes it too).

    Its serving args carry the facts the deployment was judged on (`judged`), so every request is judged
    on exactly those facts."""
    meta = deployment["metadata"]
    pod_labels = labels(deployment, cluster)
    rayservice_spec = {
        "serveConfigV2": dump_serve_config(serve_document(deployment, judged)),
        "rayClusterConfig": ray_cluster_config(deployment, pod_labels, image),
    }
    digest = hashlib.sha256(json.dumps(rayservice_spec, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": RAY_SERVICE,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": pod_labels,
            "annotations": {ANNOTATION_SPEC_HASH: digest},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": LLAMA_DEPLOYMENT,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": rayservice_spec,
    }


def is_suspended(rayservice: Mapping[str, Any]) -> bool:
    """KubeRay v1.5.1's RayService has no spec.suspend: its RayCluster's spec.suspend is the switch."""
    return ((rayservice.get("spec") or {}).get("rayClusterConfig") or {}).get("suspend") is True


def _as_run(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """A RayService spec with its Serve config as the data Serve runs: the same config written as YAML
    (before the operator wrote JSON) or as JSON is the same spec, so an upgrade rewrites no RayService."""
    text = spec.get("serveConfigV2")
    if not isinstance(text, str):
        return spec
    try:
        return {**spec, "serveConfigV2": load_serve_config(text)}
    except yaml.YAMLError:
        return spec  # compared as written: unreadable text is never the wanted config


def is_current(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the live RayService runs exactly the wanted spec and carries its labels, compared by
    content: an edit that keeps the spec-hash annotation (a record, not a proof) is still an edit."""
    labels = (actual.get("metadata") or {}).get("labels") or {}
    return _as_run(actual.get("spec") or {}) == _as_run(wanted["spec"]) and all(
        labels.get(key) == value for key, value in wanted["metadata"]["labels"].items()
    )


def restoration(wanted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch that makes a live RayService the wanted one: the whole spec replaced (a merge patch
    would keep fields someone added), its labels and spec-hash annotation set."""
    annotation = "/metadata/annotations/" + ANNOTATION_SPEC_HASH.replace("~", "~0").replace("/", "~1")
    return [
        {"op": "replace", "path": "/spec", "value": wanted["spec"]},
        {"op": "add", "path": "/metadata/labels", "value": wanted["metadata"]["labels"]},
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": annotation, "value": wanted["metadata"]["annotations"][ANNOTATION_SPEC_HASH]},
    ]


def owner(rayservice: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference of the LlamaDeployment controlling this RayService, if one does."""
    for ref in (rayservice.get("metadata") or {}).get("ownerReferences") or []:
        if (
            ref.get("kind") == LLAMA_DEPLOYMENT
            and ref.get("apiVersion") == API_VERSION
            and ref.get("controller")
        ):
            return ref  # type: ignore[no-any-return]
    return None


def owner_uid(rayservice: Mapping[str, Any]) -> str | None:
    """The uid of the LlamaDeployment controlling this RayService, if one does."""
    ref = owner(rayservice)
    return None if ref is None else str(ref.get("uid"))


SUSPEND_PATCH: dict[str, Any] = {"spec": {"rayClusterConfig": {"suspend": True}}}
