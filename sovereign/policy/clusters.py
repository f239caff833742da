"""clusters/*.yaml: one declared cluster per file, the source of truth for every enforcement point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StrictInt, ValidationError, model_validator

from sovereign.errors import BadInput
from sovereign.policy.decision_input import (
    Accreditation,
    Count,
    CountryCode,
    DnsLabel,
    EndUse,
    NonEmpty,
    Operator,
    Strict,
    describe_errors,
)
from sovereign.policy.judgement import Mode


class Deployment(Strict):
    name: DnsLabel
    model: NonEmpty
    end_use: EndUse
    replicas: Annotated[StrictInt, Field(ge=1)] = 1
    gpus_per_replica: Count = 1
    # Where the served checkpoint lives (a folder in the HF layout); default: /models/<model> in the pod.
    weights: str | None = None
    # Where the weights are stored, when not the cluster's weights_country.
    weights_country: CountryCode | None = None
    # Who must have signed the weights (an identity whose public key the serving replicas trust).
    weights_signer: DnsLabel | None = None


class ClusterSpec(Strict):
    name: DnsLabel
    region: NonEmpty
    country: CountryCode
    weights_country: CountryCode | None = None
    gpu_quota: Count | None = None
    enforcement: Mode = Mode.ENFORCE
    # The namespaces that may deploy on it (its SovereignCluster's spec.tenants.namespaces); default: the
    # namespace the Pulumi program creates for it, named after it.
    tenants: list[DnsLabel] | None = None
    operator: Operator
    accreditations: list[Accreditation] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _deployment_names_unique(self) -> ClusterSpec:
        names = [d.name for d in self.deployments]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(
                f"deployment names must be unique in a cluster; repeated: {', '.join(duplicates)}"
            )
        return self


def load_cluster(path: Path) -> ClusterSpec:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the cluster file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: malformed YAML: {exc}") from None
    try:
        return ClusterSpec.model_validate(doc)
    except ValidationError as exc:
        raise BadInput(f"{path}: invalid cluster\n{describe_errors(exc, '')}") from None
