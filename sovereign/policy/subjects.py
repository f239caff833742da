"""THE mapping from every source form to the policy's decision input.

Sources: a cluster file (clusters/*.yaml), a SovereignCluster with a LlamaDeployment, a ClusterRequest, a
RayService, and the facts a serving replica carries (its RayService's serving args, written from this same
mapping). A cluster file, a ClusterRequest and a RayService first become the Kubernetes objects they declare
(`sovereign_cluster`, `llama_deployment`, `request_proposal`, `rayservice_deployments`), so every source
reaches the policy through one function, `deployment_input`, and the same deployment gets the same input
wherever it is judged; a serving replica's facts are that input as judged (`serving_input`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Protocol

from pydantic import ValidationError

from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.policy.decision_input import ClusterFacts, DecisionInput, EndUse, describe_errors
from sovereign.policy.judgement import Mode

# The CRD defaults (operators/crds/llamadeployments.yaml), for objects built here before the API server
# has defaulted them; a test keeps both in step.
DEFAULT_REPLICAS = 1
DEFAULT_GPUS_PER_REPLICA = 1


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if value is not None}


def describe(obj: Mapping[str, Any]) -> str:
    """`Kind namespace/name`, the way errors and events name an object."""
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name', '?')}"


# --- declared sources become objects ---------------------------------------------------------------


def sovereign_cluster(spec: ClusterSpec, capacity: int | None = None) -> dict[str, Any]:
    """The SovereignCluster for a clusters/*.yaml entry (clusters/*.yaml has no capacity: pass it)."""
    operator = spec.operator
    gpu = _drop_none({"capacity": capacity, "quota": spec.gpu_quota})
    return {
        "apiVersion": k8s.API_VERSION,
        "kind": k8s.SOVEREIGN_CLUSTER,
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
                        "principalPlaceOfBusiness": operator.principal_place_of_business,
                        "monthlyActiveUsers": operator.monthly_active_users,
                        "mauByMonth": operator.mau_by_month,
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
                "tenants": {"namespaces": spec.tenants if spec.tenants is not None else [spec.name]},
                "enforcement": spec.enforcement.value,
            }
        ),
    }


def llama_deployment(cluster: ClusterSpec, deployment: Deployment, namespace: str) -> dict[str, Any]:
    """The LlamaDeployment for one deployment of a clusters/*.yaml entry, named <cluster>-<deployment>."""
    weights = _drop_none(
        {
            "path": deployment.weights,
            "country": deployment.weights_country,
            "signer": deployment.weights_signer,
        }
    )
    return {
        "apiVersion": k8s.API_VERSION,
        "kind": k8s.LLAMA_DEPLOYMENT,
        "metadata": {"name": f"{cluster.name}-{deployment.name}", "namespace": namespace},
        "spec": _drop_none(
            {
                "clusterRef": cluster.name,
                "model": deployment.model,
                "endUse": deployment.end_use.value,
                "replicas": deployment.replicas,
                "gpusPerReplica": deployment.gpus_per_replica,
                "weights": weights or None,
            }
        ),
    }


def request_proposal(request: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What a ClusterRequest asks for: the SovereignCluster it would create, and one LlamaDeployment per
    requested model (each with all the requested GPUs), which the policy judges like any other."""
    meta = request.get("metadata") or {}
    spec = request.get("spec") or {}
    organisation = spec.get("organisation") or {}
    cluster_name = spec.get("clusterName") or meta.get("name")
    gpus = spec.get("gpus")
    cluster = {
        "apiVersion": k8s.API_VERSION,
        "kind": k8s.SOVEREIGN_CLUSTER,
        "metadata": {
            "name": cluster_name,
            "labels": {
                k8s.LABEL_REQUEST_NAMESPACE: meta.get("namespace"),
                k8s.LABEL_REQUEST_NAME: meta.get("name"),
                k8s.LABEL_REQUEST_UID: meta.get("uid"),
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
                        "principalPlaceOfBusiness": organisation.get("principalPlaceOfBusiness"),
                    }
                ),
                "accreditations": list(spec.get("accreditations") or []),
                "gpu": {"capacity": gpus, "quota": gpus},
                "tenants": {"namespaces": [meta.get("namespace")]},  # the requester's
                "enforcement": Mode.ENFORCE.value,
            }
        ),
    }
    deployments = [
        {
            "apiVersion": k8s.API_VERSION,
            "kind": k8s.LLAMA_DEPLOYMENT,
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


def rayservice_deployments(
    rayservice: Mapping[str, Any],
    serving_args: Sequence[Mapping[str, Any]],
    gpus: int,
    created: str | None = None,
) -> list[dict[str, Any]]:
    """The LlamaDeployments a RayService amounts to, one per model its Serve applications serve, read from
    what it would run so that it is judged like any LlamaDeployment: `serving_args` are its applications'
    args (serving.args.ServingArgs, validated and dumped as JSON by the caller), `gpus` the most GPUs it may
    scale to (the quota is judged on that), `created` when it first claimed them (its place in the queue).
    It is a deployment in the RayService's own namespace, on the cluster its label names."""
    meta = rayservice.get("metadata") or {}
    ref = (meta.get("labels") or {}).get(k8s.LABEL_CLUSTER)
    deployments = []
    for args in serving_args:
        policy = args.get("policy") or {}
        for llm in args.get("llm_configs") or []:
            loading = llm.get("model_loading_config") or {}
            weights = {
                "country": (policy.get("cluster") or {}).get("weights_country"),
                "path": loading.get("model_source"),
                "signer": policy.get("weights_signer"),
            }
            deployments.append(
                {
                    "apiVersion": k8s.API_VERSION,
                    "kind": k8s.LLAMA_DEPLOYMENT,
                    "metadata": {**meta, "creationTimestamp": created},
                    "spec": {
                        "clusterRef": ref,
                        "model": loading.get("model_id"),
                        "endUse": policy.get("end_use"),
                        "replicas": 1,
                        "gpusPerReplica": gpus,
                        "weights": weights,
                    },
                }
            )
    return deployments


# --- objects become decision inputs ----------------------------------------------------------------


def deployment_gpus(deployment: Mapping[str, Any]) -> int:
    """GPUs a LlamaDeployment asks for: replicas x GPUs per replica."""
    spec = deployment.get("spec") or {}
    return int(spec.get("replicas", DEFAULT_REPLICAS)) * int(
        spec.get("gpusPerReplica", DEFAULT_GPUS_PER_REPLICA)
    )


def declared_gpus_in_use(deployments: Sequence[Mapping[str, Any]], index: int) -> int:
    """GPUs held before `deployments[index]` by the deployments declared ahead of it (a stack or a cluster
    file creates them in order): the operator counts a deployment's elders the same way, so a quota
    overrun refuses the last declared, wherever it is judged."""
    return sum(deployment_gpus(d) for d in deployments[:index])


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
                    "principal_place_of_business": operator.get("principalPlaceOfBusiness"),
                    "monthly_active_users": operator.get("monthlyActiveUsers"),
                    "mau_by_month": operator.get("mauByMonth"),
                    "llama_licence_grant": operator.get("llamaLicenceGrant"),
                }
            ),
            "accreditations": [
                {"scheme": a.get("scheme"), "expires": a.get("expires")}
                for a in spec.get("accreditations") or []
            ],
            "tenants": (spec.get("tenants") or {}).get("namespaces"),
        }
    )
    try:
        return ClusterFacts.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(
            f"{describe(cluster)} cannot be judged: fix its spec\n{describe_errors(exc, 'cluster')}"
        ) from None


def _input(raw: dict[str, Any], what: Mapping[str, Any]) -> DecisionInput:
    try:
        return DecisionInput.model_validate(_drop_none(raw))
    except ValidationError as exc:
        raise BadInput(
            f"{describe(what)} cannot be judged: fix its spec\n{describe_errors(exc, 'input')}"
        ) from None


def deployment_input(
    cluster: Mapping[str, Any],
    deployment: Mapping[str, Any],
    *,
    gpus_in_use: int | None = None,
    as_of: date | str | None = None,
) -> DecisionInput:
    """THE mapping: a LlamaDeployment on a SovereignCluster -> the policy's decision input.

    `gpus_in_use` is what the cluster's other deployments hold (a fact the caller gathers); `as_of` the
    date to judge on (default: the judge's today).
    """
    spec = deployment.get("spec") or {}
    facts = cluster_facts(cluster, (spec.get("weights") or {}).get("country"), gpus_in_use)
    raw = {
        "cluster": facts,
        "model": spec.get("model"),
        "end_use": spec.get("endUse"),
        "gpus": deployment_gpus(deployment),
        "as_of": as_of,
        "namespace": (deployment.get("metadata") or {}).get("namespace"),
        "weights_signer": (spec.get("weights") or {}).get("signer"),
    }
    return _input(raw, deployment)


def model_input(
    cluster: Mapping[str, Any], model: str, end_use: str, gpus: int | None = None, as_of: str | None = None
) -> DecisionInput:
    """May `cluster` host `model` for `end_use` at all (no particular deployment): a matrix cell, or
    `sovereign decide --cluster F --model M`."""
    raw = {
        "cluster": cluster_facts(cluster),
        "model": model,
        "end_use": end_use,
        "gpus": gpus,
        "as_of": as_of,
    }
    return _input(raw, cluster)


class ServingFacts(Protocol):
    """What a serving replica knows of the deployment it serves: the facts it was judged on, carried in its
    RayService's serving args (serving.args.PolicyContext)."""

    @property
    def cluster(self) -> ClusterFacts: ...
    @property
    def end_use(self) -> EndUse: ...
    @property
    def gpus(self) -> int | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def weights_signer(self) -> str | None: ...


def serving_input(context: ServingFacts, model_id: str) -> DecisionInput:
    """The input a serving replica judges each request to `model_id` on (the request's own facts added by
    the guard): exactly the deployment's judged facts, its namespace and weights signer included, so a
    request is refused for whatever refused the deployment (TENANT_NOT_ALLOWED among them)."""
    return DecisionInput(
        cluster=context.cluster,
        model=model_id,
        end_use=context.end_use,
        gpus=context.gpus,
        namespace=context.namespace,
        weights_signer=context.weights_signer,
    )


def declared_inputs(spec: ClusterSpec, as_of: str | None = None) -> dict[str, DecisionInput]:
    """Each deployment a cluster file declares, by name, as the Pulumi preview and the operator see it (in
    the namespace the Pulumi program creates for the cluster, named after it)."""
    cluster = sovereign_cluster(spec)
    deployments = [llama_deployment(spec, d, namespace=spec.name) for d in spec.deployments]
    return {
        declared.name: deployment_input(
            cluster, deployments[index], gpus_in_use=declared_gpus_in_use(deployments, index), as_of=as_of
        )
        for index, declared in enumerate(spec.deployments)
    }


def enforcement_mode(cluster: Mapping[str, Any]) -> Mode:
    """A SovereignCluster's enforcement mode; anything unreadable enforces (fail closed)."""
    try:
        return Mode(str((cluster.get("spec") or {}).get("enforcement", Mode.ENFORCE)))
    except ValueError:
        return Mode.ENFORCE


def facts_of(spec: ClusterSpec) -> ClusterFacts:
    """A cluster file's cluster as the policy sees it (through the SovereignCluster it declares)."""
    return cluster_facts(sovereign_cluster(spec))
