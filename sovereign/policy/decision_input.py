"""The decision input: checked here for shape and types only, every judgement is left to the Rego policy.

Unknown fields are refused (a typo must not silently drop a fact the policy needs), and the user cannot
supply `screening`: screening hits are always computed here from the denied-party list.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Accreditation(Strict):
    scheme: NonEmpty
    expires: IsoDate
    reference: str | None = None  # the certificate or authorisation, for people: not a policy fact


class Operator(Strict):
    name: NonEmpty
    country: CountryCode
    kind: OperatorKind
    sponsor_country: CountryCode | None = None
    # Where a company is run from, when not where it is incorporated (`country`); the Llama EU paragraph
    # follows a company's principal place of business. Not read for an individual (domicile is `country`).
    principal_place_of_business: CountryCode | None = None
    monthly_active_users: Count | None = None
    # Monthly active users of the licensee and its affiliates, by calendar month: Llama licences §2 count
    # the month before each version's release date.
    mau_by_month: dict[YearMonth, Count] | None = None
    llama_licence_grant: StrictBool | None = None


class ClusterFacts(Strict):
    name: DnsLabel
    region: NonEmpty
    country: CountryCode
    weights_country: CountryCode | None = None
    gpu_quota: Count | None = None
    gpus_in_use: Count | None = None
    operator: Operator
    accreditations: list[Accreditation] = Field(default_factory=list)
    tenants: list[DnsLabel] | None = None  # the namespaces that may deploy on it


class DecisionInput(Strict):
    cluster: ClusterFacts
    model: NonEmpty
    end_use: EndUse
    gpus: Count | None = None
    as_of: IsoDate | None = None
    namespace: DnsLabel | None = None  # where the deployment is made (its tenant); None: no deployment
    # Who must have signed the weights (an OpenSSF model signature), as the deployment names it.
    weights_signer: DnsLabel | None = None

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
