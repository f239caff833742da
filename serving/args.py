"""The builder's arguments: the `args` of an application in a RayService's serveConfigV2.

Shaped like ray.serve.llm's `llm_configs[]` (model_loading_config, engine_kwargs, deployment_config), so
swapping in `ray.serve.llm:build_openai_app` on a GPU cluster stays a config change, plus the cluster's
policy context, which every request's decision needs:

    args:
      llm_configs:
        - model_loading_config: {model_id: llama-3.1-8b-instruct, model_source: /models/llama-3.1-8b}
          engine_kwargs: {device: auto, max_new_tokens: 256}
          deployment_config: {num_replicas: 1, ray_actor_options: {num_cpus: 1}}
      policy:
        cluster: {name: eu-par-1, region: eu-text-only, country: FR, operator: {...}, accreditations: []}
        end_use: commercial
        namespace: team-a
      tenant_header: x-tenant-id
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from sovereign.policy.decision_input import ClusterFacts, Count, DnsLabel, EndUse

MiB = 1024 * 1024
# The builder these args are for (serving/app.py); defined here so config writers need not import Ray.
IMPORT_PATH = "serving.app:build_app"


class _StrictArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelLoadingConfig(_StrictArgs):
    model_id: Annotated[
        StrictStr, Field(min_length=1, description="the catalogue id clients pass as `model`")
    ]
    model_source: Annotated[Path, Field(description="local folder of a Hugging Face safetensors checkpoint")]


class EngineKwargs(_StrictArgs):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: Annotated[StrictInt, Field(ge=1, le=8192)] = 256


class DeploymentConfig(_StrictArgs):
    """Ray Serve deployment options for the model deployment (the ones ray.serve.llm passes through)."""

    num_replicas: Annotated[StrictInt, Field(ge=1)] | Literal["auto"] | None = None
    ray_actor_options: dict[str, Any] | None = None
    max_ongoing_requests: Annotated[StrictInt, Field(ge=1)] | None = None
    max_queued_requests: StrictInt | None = None
    autoscaling_config: dict[str, Any] | None = None

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class LLMConfig(_StrictArgs):
    model_loading_config: ModelLoadingConfig
    engine_kwargs: EngineKwargs = EngineKwargs()
    deployment_config: DeploymentConfig = DeploymentConfig()


class PolicyContext(_StrictArgs):
    """The facts the deployment was judged on (sovereign.policy.subjects), judged again at every request."""

    cluster: ClusterFacts
    end_use: EndUse
    gpus: Count | None = None
    namespace: DnsLabel | None = Field(
        default=None, description="where the deployment was judged (its tenant): judged again per request"
    )
    weights_signer: DnsLabel | None = Field(
        default=None, description="who must have signed the weights (spec.weights.signer)"
    )
    screening_list: Path | None = Field(
        default=None,
        description="Consolidated Screening List JSON (default: $SOVEREIGN_SCREENING_LIST, else the dev "
        "sample); without a current one every request is undecided",
    )


class ServingArgs(_StrictArgs):
    llm_configs: Annotated[list[LLMConfig], Field(min_length=1)]
    policy: PolicyContext
    tenant_header: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9-]+$")] = "x-tenant-id"
    max_request_bytes: Annotated[StrictInt, Field(ge=1024, le=64 * MiB)] = MiB
    max_tenant_labels: Annotated[StrictInt, Field(ge=1, le=10_000)] = 100

    @field_validator("llm_configs")
    @classmethod
    def _model_ids_unique(cls, configs: list[LLMConfig]) -> list[LLMConfig]:
        ids = [c.model_loading_config.model_id.lower() for c in configs]
        if repeated := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"each model_id may appear once; repeated: {', '.join(repeated)}")
        return configs
