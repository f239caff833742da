"""sovereign's Kubernetes objects, and the one mapping from them to the policy decision input.

Pulumi (infra/) builds SovereignCluster and LlamaDeployment objects from clusters/*.yaml with
`sovereign_cluster` and `llama_deployment`; the operator, its admission webhook and the Pulumi policy pack
turn objects into decision inputs only through `decision_input`. A ClusterRequest becomes the objects it
asks for (`request_proposal`), so it is judged through the same mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sovereign.errors import BadInput
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.policy.decision_input import ClusterFacts, DecisionInput, describe_errors

GROUP = "sovereign.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CLUSTERS = "sovereignclusters"
DEPLOYMENTS = "llamadeployments"
REQUESTS = "clusterrequests"

# A namespace with this label is under the admission webhook, and is where the operator may write.
MANAGED_LABEL = "sovereign.dev/managed"
REQUEST_NAMESPACE_LABEL = "sovereign.dev/request-namespace"
REQUEST_NAME_LABEL = "sovereign.dev/request-name"
REQUEST_UID_LABEL = "sovereign.dev/request-uid"
OPERATOR_SERVICE_ACCOUNT = ("sovereign-system", "sovereign-operator")
NAMESPACE_ROLE = "sovereign-operator-namespace"

# The CRD defaults (operators/crds/llamadeployments.yaml), for objects built here before the API server
# has defaulted them; a test keeps both in step.
DEFAULT_REPLICAS = 1
DEFAULT_GPUS_PER_REPLICA = 1

_HERE = Path(__file__).resolve().parent
CRD_FILES = sorted((_HERE / "crds").glob("*.yaml"))
RBAC_FILE = _HERE / "rbac" / "operator.yaml"
EXAMPLES_DIR = _HERE / "examples"


def dev_manifests() -> list[Path]:
    """What `sovereign dev up` applies after the KubeRay CRDs: sovereign's CRDs, then the operator's RBAC."""
    return [*CRD_FILES, RBAC_FILE]


def crd(plural: str) -> dict[str, Any]:
    """One of sovereign's CRDs as a document, e.g. crd('llamadeployments')."""
    return yaml.safe_load((_HERE / "crds" / f"{plural}.yaml").read_text())


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if value is not None}


def _name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name', '?')}"


# --- building objects -------------------------------------------------------------------------------


def sovereign_cluster(spec: ClusterSpec, capacity: int | None = None) -> dict[str, Any]:
    """The SovereignCluster for a clusters/*.yaml entry (clusters/*.yaml has no capacity: pass it)."""
    operator = spec.operator
    gpu = _drop_none({"capacity": capacity, "quota": spec.gpu_quota})
    return {
        "apiVersion": API_VERSION,
        "kind": "SovereignCluster",
        "metadata": {"name": spec.name},
        "spec": _drop_none(
            {
                "region": spec.region,
                "country": spec.country,
                "weightsCountry": spec.weights_country,
                "operator": _drop_none(
                    {
                        "name": operator.name,
                        "country": operator.country,
                        "kind": operator.kind.value,
                        "sponsorCountry": operator.sponsor_country,
                        "monthlyActiveUsers": operator.monthly_active_users,
                        "llamaLicenceGrant": operator.llama_licence_grant,
                    }
                ),
                "accreditations": [
                    _drop_none(
                        {"scheme": a.scheme, "reference": a.reference, "expires": a.expires.isoformat()}
                    )
                    for a in spec.accreditations
                ],
                "gpu": gpu or None,
                "enforcement": spec.enforcement.value,
            }
        ),
    }


def llama_deployment(cluster: ClusterSpec, deployment: Deployment, namespace: str) -> dict[str, Any]:
    """The LlamaDeployment for one deployment of a clusters/*.yaml entry, named <cluster>-<deployment>."""
    weights = {"path": deployment.weights} if deployment.weights else None
    return {
        "apiVersion": API_VERSION,
        "kind": "LlamaDeployment",
        "metadata": {"name": f"{cluster.name}-{deployment.name}", "namespace": namespace},
        "spec": _drop_none(
            {
                "clusterRef": cluster.name,
                "model": deployment.model,
                "endUse": deployment.end_use.value,
                "replicas": deployment.replicas,
                "gpusPerReplica": deployment.gpus_per_replica,
                "weights": weights,
            }
        ),
    }


def onboard_namespace(name: str) -> list[dict[str, Any]]:
    """A namespace for sovereign workloads: labelled for the webhook, with the operator's RoleBinding."""
    sa_namespace, sa_name = OPERATOR_SERVICE_ACCOUNT
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {MANAGED_LABEL: "true"}},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "sovereign-operator", "namespace": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAMESPACE_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
        },
    ]


# --- reading objects --------------------------------------------------------------------------------


def deployment_gpus(deployment: Mapping[str, Any]) -> int:
    """GPUs a LlamaDeployment asks for: replicas x GPUs per replica."""
    spec = deployment.get("spec") or {}
    return int(spec.get("replicas", DEFAULT_REPLICAS)) * int(
        spec.get("gpusPerReplica", DEFAULT_GPUS_PER_REPLICA)
    )


def cluster_facts(
    cluster: Mapping[str, Any], weights_country: str | None = None, gpus_in_use: int | None = None
) -> ClusterFacts:
    """A SovereignCluster as the policy sees it (its reference texts and enforcement mode are not facts)."""
    spec = cluster.get("spec") or {}
    operator = spec.get("operator") or {}
    raw = _drop_none(
        {
            "name": (cluster.get("metadata") or {}).get("name"),
            "region": spec.get("region"),
            "country": spec.get("country"),
            "weights_country": weights_country or spec.get("weightsCountry"),
            "gpu_quota": (spec.get("gpu") or {}).get("quota"),
            "gpus_in_use": gpus_in_use,
            "operator": _drop_none(
                {
                    "name": operator.get("name"),
                    "country": operator.get("country"),
                    "kind": operator.get("kind"),
                    "sponsor_country": operator.get("sponsorCountry"),
                    "monthly_active_users": operator.get("monthlyActiveUsers"),
                    "llama_licence_grant": operator.get("llamaLicenceGrant"),
                }
            ),
            "accreditations": [
                {"scheme": a.get("scheme"), "expires": a.get("expires")}
                for a in spec.get("accreditations") or []
            ],
        }
    )
    try:
        return ClusterFacts.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(
            f"{_name_of(cluster)} cannot be judged: fix its spec\n{describe_errors(exc, 'cluster')}"
        ) from None


def decision_input(
    cluster: Mapping[str, Any],
    deployment: Mapping[str, Any],
    *,
    gpus_in_use: int | None = None,
    as_of: date | str | None = None,
) -> DecisionInput:
    """THE mapping: a LlamaDeployment on a SovereignCluster -> the policy's decision input.

    `gpus_in_use` is what the cluster's other deployments hold (a fact the caller gathers); `as_of` the
    date to judge on (default: today, set by `DecisionInput.policy_input`).
    """
    spec = deployment.get("spec") or {}
    facts = cluster_facts(cluster, (spec.get("weights") or {}).get("country"), gpus_in_use)
    raw = {
        "cluster": facts,
        "model": spec.get("model"),
        "end_use": spec.get("endUse"),
        "gpus": deployment_gpus(deployment),
        "as_of": as_of,
    }
    try:
        return DecisionInput.model_validate(_drop_none(raw))
    except ValidationError as exc:
        raise BadInput(
            f"{_name_of(deployment)} cannot be judged: fix its spec\n{describe_errors(exc, 'input')}"
        ) from None


def request_proposal(request: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What a ClusterRequest asks for: the SovereignCluster it would create, and one LlamaDeployment per
    requested model (each with all the requested GPUs), which the policy judges like any other."""
    meta = request.get("metadata") or {}
    spec = request.get("spec") or {}
    organisation = spec.get("organisation") or {}
    cluster_name = spec.get("clusterName") or meta.get("name")
    gpus = spec.get("gpus")
    cluster = {
        "apiVersion": API_VERSION,
        "kind": "SovereignCluster",
        "metadata": {
            "name": cluster_name,
            "labels": {
                REQUEST_NAMESPACE_LABEL: meta.get("namespace"),
                REQUEST_NAME_LABEL: meta.get("name"),
                REQUEST_UID_LABEL: meta.get("uid"),
            },
        },
        "spec": _drop_none(
            {
                "region": spec.get("region"),
                "country": spec.get("country"),
                "weightsCountry": spec.get("weightsCountry"),
                "operator": _drop_none(
                    {
                        "name": organisation.get("name"),
                        "country": organisation.get("country"),
                        "kind": organisation.get("kind"),
                        "sponsorCountry": organisation.get("sponsorCountry"),
                    }
                ),
                "accreditations": list(spec.get("accreditations") or []),
                "gpu": {"capacity": gpus, "quota": gpus},
                "enforcement": "enforce",
            }
        ),
    }
    deployments = [
        {
            "apiVersion": API_VERSION,
            "kind": "LlamaDeployment",
            "metadata": {"name": f"{meta.get('name')}-model-{index}", "namespace": meta.get("namespace")},
            "spec": {
                "clusterRef": cluster_name,
                "model": model,
                "endUse": spec.get("endUse"),
                "replicas": 1,
                "gpusPerReplica": gpus,
            },
        }
        for index, model in enumerate(spec.get("models") or [])
    ]
    return cluster, deployments
