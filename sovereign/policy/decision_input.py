"""The decision input: checked here for shape and types only, every judgement is left to the Rego policy.

Unknown fields are refused (a typo must not silently drop a fact the policy needs), and the user cannot
supply `screening`: screening hits are always computed here from the denied-party list. Every field is
written in snake_case (`end_use`) as the policy reads it, or in camelCase (`endUse`) as the Kubernetes
objects (ClusterRequests, LlamaDeployments) write the same facts; giving both spellings is refused.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from sovereign.errors import BadInput

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    # pydantic's lax date also takes Unix timestamps; a policy date must be written as a date.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise ValueError("expected a date written YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
CountryCode = Annotated[
    str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code in upper case, e.g. US")
]
DnsLabel = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description="DNS-1123 label, e.g. usdef-east-1"),
]
NonEmpty = Annotated[str, Field(min_length=1)]
Count = Annotated[StrictInt, Field(ge=0)]
YearMonth = Annotated[
    str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a calendar month, e.g. 2024-08")
]


class OperatorKind(StrEnum):
    company = "company"
    government_agency = "government_agency"
    government_contractor = "government_contractor"
    research_institution = "research_institution"
    individual = "individual"


class EndUse(StrEnum):
    commercial = "commercial"
    research = "research"
    public_sector = "public_sector"
    defense = "defense"
    national_security = "national_security"
    intelligence = "intelligence"


def _either_spelling(name: str) -> AliasChoices | None:
    camel = to_camel(name)
    return AliasChoices(name, camel) if camel != name else None


class Strict(BaseModel):
    # The first choice, snake_case, is what the JSON Schema shows and what the policy is given.
    model_config = ConfigDict(
        extra="forbid", alias_generator=AliasGenerator(validation_alias=_either_spelling)
    )


class Accreditation(Strict):
    scheme: NonEmpty = Field(description="a scheme of policies/data/accreditations.yaml, e.g. dod-il5")
    expires: IsoDate
    reference: str | None = Field(
        default=None, description="the certificate or authorisation, for people: not a policy fact"
    )


class Operator(Strict):
    """Who runs the cluster."""

    name: NonEmpty = Field(description="as registered: it is screened against the denied-party list")
    country: CountryCode = Field(description="where it is incorporated (an individual: domicile)")
    kind: OperatorKind
    sponsor_country: CountryCode | None = Field(
        default=None, description="the government sponsoring a contractor"
    )
    # The Llama EU paragraph follows a company's principal place of business, not its incorporation.
    principal_place_of_business: CountryCode | None = Field(
        default=None,
        description="where a company is run from, when not `country`; not read for an individual",
    )
    monthly_active_users: Count | None = None
    # Llama licences §2 count the calendar month before each version's release date.
    mau_by_month: dict[YearMonth, Count] | None = Field(
        default=None, description="monthly active users of the licensee and its affiliates, by month"
    )
    llama_licence_grant: StrictBool | None = Field(
        default=None,
        description="true when Meta granted the licence §2 requires above 700 million monthly active users",
    )


class ClusterFacts(Strict):
    """The cluster asked to host the model, as its declaration (clusters/*.yaml) states it."""

    name: DnsLabel
    region: NonEmpty = Field(description="a region profile of policies/data/regions/, e.g. us-defense")
    country: CountryCode = Field(description="where the cluster runs")
    weights_country: CountryCode | None = Field(
        default=None, description="where the weights are stored, when not `country`"
    )
    gpu_quota: Count | None = None
    gpus_in_use: Count | None = None
    operator: Operator
    accreditations: list[Accreditation] = Field(default_factory=list)
    tenants: list[DnsLabel] | None = Field(default=None, description="the namespaces that may deploy on it")


class DecisionInput(Strict):
    """One question for the policy: may this cluster host this model for this end use? Fields may also be
    written in camelCase (endUse), as in the Kubernetes objects."""

    cluster: ClusterFacts
    model: NonEmpty = Field(
        description="catalogue id (llama-3.3-70b-instruct) or Hugging Face repo id in any case "
        "(meta-llama/Llama-3.3-70B-Instruct)"
    )
    end_use: EndUse
    gpus: Count | None = Field(default=None, description="GPUs the deployment adds to the cluster's use")
    as_of: IsoDate | None = Field(default=None, description="decide as of this date (default: today, UTC)")
    namespace: DnsLabel | None = Field(
        default=None, description="where the deployment is made (its tenant); absent: no deployment"
    )
    weights_signer: DnsLabel | None = Field(
        default=None, description="who must have signed the weights (an OpenSSF model signature)"
    )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> DecisionInput:
        """The input a policy document was formed from (the judge's added facts left out)."""
        return cls.model_validate({key: value for key, value in doc.items() if key in cls.model_fields})

    def policy_input(self, screening: dict[str, Any]) -> dict[str, Any]:
        """The document the policy evaluates: absent optional facts stay absent; `screening` is what the
        judge found (`{performed, hits}`), never the user's to supply."""
        doc = self.model_dump(mode="json", exclude_none=True)
        doc["screening"] = screening
        return doc


def describe_errors(exc: ValidationError, where: str) -> str:
    """One line per problem, each naming the field path under `where`, e.g. `input[1].cluster.country`."""
    lines = []
    for err in exc.errors():
        path = where
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
        detail = err["msg"]
        if err["type"] == "extra_forbidden":
            detail = "unknown field: remove it or fix its spelling"
        elif err["type"] == "missing":
            detail = "field required: add it"
        lines.append(f"{path}: {detail}")
    return "\n".join(lines)


def parse_decision_inputs(text: str, source: str) -> tuple[list[DecisionInput], bool]:
    """Parse one input object or a JSON array of them; returns (inputs, was_array). BadInput otherwise."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "give one decision input object or an array of them"
        ) from None
    was_array = isinstance(doc, list)
    items = doc if was_array else [doc]
    if not isinstance(doc, (list, dict)) or not items:
        raise BadInput(f"{source}: expected a decision input object or a non-empty array of them")
    inputs, problems = [], []
    for index, item in enumerate(items):
        where = f"input[{index}]" if was_array else "input"
        try:
            inputs.append(DecisionInput.model_validate(item))
        except ValidationError as exc:
            problems.append(describe_errors(exc, where))
    if problems:
        raise BadInput(f"{source}: invalid decision input\n" + "\n".join(problems))
    return inputs, was_array
