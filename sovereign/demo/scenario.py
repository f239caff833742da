"""What the demo deploys and asks, as data: one control plane per sovereign region, each with one cluster
from clusters/ re-declared to serve the tiny local checkpoints, the one non-compliant declaration preview
refuses, the requests sent to what is served, the contractors' ClusterRequests and the policy change.

The clusters are the repo's examples; only their deployments change, so that every served model is one
a tiny checkpoint stands in for (serving verifies the weights against the declared variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TEXT_MODEL = "llama-3.1-8b-instruct"  # what the tiny text checkpoint stands in for
VISION_MODEL = "llama-3.2-11b-vision-instruct"  # what the tiny Mllama checkpoint stands in for


@dataclass(frozen=True)
class DemoDeployment:
    name: str
    model: str
    end_use: str
    gpus_per_replica: int = 1

    @property
    def is_vision(self) -> bool:
        return self.model == VISION_MODEL


@dataclass(frozen=True)
class DemoRegion:
    region: str
    cluster_file: str  # from clusters/
    deployments: tuple[DemoDeployment, ...]
    refused_file: str | None = None  # a declaration preview must refuse
    expected_refusal: tuple[str, ...] = ()

    @property
    def cluster(self) -> str:
        return self.cluster_file.removesuffix(".yaml")

    def deployment(self, name: str) -> DemoDeployment:
        return next(d for d in self.deployments if d.name == name)

    def service(self, deployment: DemoDeployment) -> tuple[str, str]:
        """(namespace, name) of the RayService the operator makes for a deployment."""
        return self.cluster, f"{self.cluster}-{deployment.name}"


@dataclass(frozen=True)
class SampleRequest:
    """A chat completion sent through the official openai client to one region's deployment."""

    label: str  # how the transcript names it: "<label> request answered"
    region: str
    deployment: str
    prompt: str
    max_tokens: int
    with_image: bool = False
    tenant: str | None = None  # sent as x-tenant-id: the serving metrics and the policy input carry it
    refused_with: str | None = None  # the reason code of the HTTP 403 expected instead of an answer


@dataclass(frozen=True)
class ClusterRequestCase:
    """A contractor's ClusterRequest from operators/examples/clusterrequests/ and the decision it must get."""

    region: str
    file: str
    phase: Literal["Approved", "Denied"]
    screening_hit: bool = False  # denied because the organisation is on the screening list


@dataclass(frozen=True)
class PolicyChange:
    """A textual edit to one file under policies/, and the deployment it must take out of compliance."""

    description: str
    file: str  # under policies/
    old: str
    new: str
    region: str
    deployment: str  # whose RayService the operator must suspend
    code: str  # the violation it must then carry


REGIONS: tuple[DemoRegion, ...] = (
    DemoRegion(
        "us-defense",
        "usdef-east-1.yaml",
        (
            DemoDeployment("chat", TEXT_MODEL, "defense", 2),
            DemoDeployment("vision", VISION_MODEL, "intelligence", 4),
        ),
    ),
    DemoRegion("five-eyes", "fvey-london-1.yaml", (DemoDeployment("chat", TEXT_MODEL, "public_sector", 2),)),
    DemoRegion(
        "eu-text-only",
        "eu-frankfurt-1.yaml",
        (DemoDeployment("chat", TEXT_MODEL, "commercial", 1),),
        refused_file="eu-rotterdam-1-noncompliant.yaml",
        expected_refusal=("EU_MULTIMODAL_LICENCE", "REGION_MODALITY"),
    ),
)

SAMPLE_REQUESTS: tuple[SampleRequest, ...] = (
    SampleRequest(
        "EU text", "eu-text-only", "chat", "Say hello to Frankfurt.", max_tokens=12, tenant="demo-eu"
    ),
    # The text-only region's guard refuses an image before it reaches the model.
    SampleRequest(
        "EU image",
        "eu-text-only",
        "chat",
        "What is in this picture?",
        max_tokens=8,
        with_image=True,
        refused_with="REGION_MODALITY",
    ),
    SampleRequest(
        "us-defense image",
        "us-defense",
        "vision",
        "What is in this picture?",
        max_tokens=8,
        with_image=True,
        tenant="demo-us",
    ),
)

# The sample requests answered on a caller's behalf: each caller is charged for its tokens (chargeback,
# `sovereign report`).
CHARGED = tuple(r for r in SAMPLE_REQUESTS if r.tenant is not None and r.refused_with is None)
CALLERS = frozenset(str(r.tenant) for r in CHARGED)

CLUSTER_REQUESTS: tuple[ClusterRequestCase, ...] = (
    ClusterRequestCase("us-defense", "clusterrequest-approved.yaml", "Approved"),
    ClusterRequestCase("five-eyes", "clusterrequest-denied.yaml", "Denied", screening_hit=True),
)

# The UK's OFFICIAL tier no longer accredits a Five Eyes cluster, so fvey-london-1 (accredited
# uk-official) falls out of compliance and its RayService is suspended.
POLICY_CHANGE = PolicyChange(
    description="five-eyes: GB clusters now need uk-secret (uk-official no longer accepted)",
    file="data/regions/five-eyes.yaml",
    old="GB: [uk-official, uk-secret]",
    new="GB: [uk-secret]",
    region="five-eyes",
    deployment="chat",
    code="ACCREDITATION_MISSING",
)
