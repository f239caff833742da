"""The policy's facts: YAML under policies/data/, validated on load and compiled into the bundle's data.json.

The Rego in policies/sovereign/ reads only the compiled document (`PolicyData.opa_document()`); Python code
that needs catalogue facts (modalities, parameters) reads the same validated objects, never the raw YAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sovereign import yamldoc
from sovereign.errors import BadInput
from sovereign.toolchain import REPO_ROOT

DEFAULT_DATA_DIR = REPO_ROOT / "policies" / "data"

Modality = Literal["text", "image"]
EndUse = Literal["commercial", "research", "public_sector", "defense", "national_security", "intelligence"]
OperatorKind = Literal[
    "company", "government_agency", "government_contractor", "research_institution", "individual"
]
END_USES: tuple[str, ...] = EndUse.__args__
OPERATOR_KINDS: tuple[str, ...] = OperatorKind.__args__

_COUNTRY = re.compile(r"[A-Z]{2}")


def _no_yaml_boolean(value: object) -> object:
    # YAML 1.1 (PyYAML) reads an unquoted NO (Norway) as false: say so instead of "not a valid string".
    if isinstance(value, bool):
        raise ValueError(
            "got a boolean: quote country codes that YAML reads as booleans ('NO', 'ON', 'Y', 'N')"
        )
    return value


# The project's own rules (fail closed, a region profile's choices) are not legal sources: they say so, and
# point at the file in this repository that states them.
DESIGN_CITATION = re.compile(
    r"sovereign design rule\b.* — (?P<path>[A-Za-z0-9_.][A-Za-z0-9_./-]*)(#[a-z0-9-]+)?"
)


def _is_citation(value: str) -> str:
    if not (re.fullmatch(r"\S.* — https://\S+", value) or DESIGN_CITATION.fullmatch(value)):
        raise ValueError(
            "a citation is 'Source name — https://url' (an em dash between name and URL), or, for the "
            "project's own rules, 'sovereign design rule...: what — path/in/this/repository'"
        )
    return value


def _context(info: ValidationInfo, key: str) -> dict[str, Any]:
    if not info.context or key not in info.context:
        raise ValueError(f"validate with load_policy_data(): '{key}' must be loaded first")
    return info.context[key]


def _expand_countries(entries: list[str], info: ValidationInfo) -> list[str]:
    """ISO codes stay, country-group ids (from countries.yaml) become their members; sorted and unique."""
    groups: dict[str, CountryGroup] = _context(info, "country_groups")
    countries: set[str] = set()
    for entry in entries:
        if entry in groups:
            countries.update(groups[entry].members)
        elif _COUNTRY.fullmatch(entry):
            countries.add(entry)
        else:
            raise ValueError(
                f"'{entry}' is neither an ISO 3166-1 alpha-2 code (upper case) nor a country group "
                f"of countries.yaml ({', '.join(sorted(groups))})"
            )
    return sorted(countries)


def _known(context_key: str, what: str) -> Callable[[str, ValidationInfo], str]:
    def check(value: str, info: ValidationInfo) -> str:
        known = _context(info, context_key)
        if value not in known:
            raise ValueError(f"unknown {what} '{value}'; known: {', '.join(sorted(known))}")
        return value

    return check


Country = Annotated[str, BeforeValidator(_no_yaml_boolean), StringConstraints(pattern=r"^[A-Z]{2}$")]
Citation = Annotated[str, AfterValidator(_is_citation)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
# A list of ISO codes and/or country-group ids, expanded to ISO codes on load.
Countries = Annotated[
    list[Annotated[str, BeforeValidator(_no_yaml_boolean)]],
    Field(min_length=1),
    AfterValidator(_expand_countries),
]
SchemeId = Annotated[str, AfterValidator(_known("schemes", "accreditation scheme"))]
LicenceId = Annotated[str, AfterValidator(_known("licences", "licence family"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # For a file: how errors name its list entries, list field -> (label, the key holding the entry's id).
    entry_names: ClassVar[dict[str, tuple[str, str]]] = {}


def _unique(entries: list[Any], key: str, what: str) -> list[Any]:
    seen: set[str] = set()
    for entry in entries:
        value = getattr(entry, key)
        if value in seen:
            raise ValueError(f"{what} '{value}' is defined twice")
        seen.add(value)
    return entries


# --- countries.yaml ---------------------------------------------------------------------------------------


class CountryGroup(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
    name: str
    members: list[Country] = Field(min_length=1)
    citations: list[Citation] = Field(min_length=1)
    notes: str | None = None


class NotIsoCode(_Strict):
    """A code people write for a country that ISO 3166-1 does not assign to it: advice, not a policy fact."""

    code: Country
    iso: Country
    name: str
    citation: Citation


class CountriesFile(_Strict):
    entry_names = {"groups": ("country group", "id"), "not_iso": ("code", "code")}
    groups: list[CountryGroup]
    not_iso: list[NotIsoCode] = []

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[CountryGroup]) -> list[CountryGroup]:
        _unique(groups, "id", "country group")
        # The embargo rule reads this group by name: the Rego cannot work without it.
        if "embargoed" not in {group.id for group in groups}:
            raise ValueError("a group with id 'embargoed' (embargoed destinations) is required")
        return groups


# --- accreditations.yaml ----------------------------------------------------------------------------------


class AccreditationScheme(_Strict):
    id: Identifier
    name: str
    country: Country
    citation: Citation


class AccreditationsFile(_Strict):
    entry_names = {"schemes": ("accreditation", "id")}
    schemes: list[AccreditationScheme]

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, schemes: list[AccreditationScheme]) -> list[AccreditationScheme]:
        return _unique(schemes, "id", "accreditation scheme")


# --- licences.yaml ----------------------------------------------------------------------------------------


class OperatorRule(_Strict):
    """An operator is eligible when its kind matches and each listed constraint holds (absent = any)."""

    kind: OperatorKind
    countries: Countries | None = None
    sponsor_countries: Countries | None = None

    @model_validator(mode="after")
    def _sponsor_only_for_contractors(self) -> OperatorRule:
        if self.sponsor_countries is not None and self.kind != "government_contractor":
            raise ValueError("sponsor_countries applies only to kind government_contractor")
        return self


class EuMultimodalClause(_Strict):
    operator_countries: Countries
    citation: Citation
    reading: str


class MauClause(_Strict):
    threshold: PositiveInt
    citation: Citation
    reading: str


class Attribution(_Strict):
    text: str | None = None  # the display the licence asks for ("Built with Llama"); Llama 2 asks for none
    notice: str
    citation: Citation


class MilitaryProhibition(_Strict):
    citation: Citation


class LicenceFamily(_Strict):
    id: Identifier
    name: str
    release_date: date  # the licence's "Version Release Date": §2 counts MAU in the month before it
    licence_url: Url
    acceptable_use_policy_url: Url
    mau_clause: MauClause
    attribution: Attribution
    military_prohibition: MilitaryProhibition
    eu_multimodal_clause: EuMultimodalClause | None = None

    @property
    def deciding_month(self) -> str:
        """`YYYY-MM`, the calendar month before the release date, whose MAU figure §2 counts."""
        year, month = self.release_date.year, self.release_date.month - 1
        if month == 0:
            year, month = year - 1, 12
        return f"{year:04d}-{month:02d}"


class CarveOutRule(_Strict):
    """An operator kind the carve-out covers, and which of its countries must be a member in force."""

    kind: OperatorKind
    member_constraints: list[Literal["countries", "sponsor_countries"]] = Field(min_length=1)

    @model_validator(mode="after")
    def _sponsor_only_for_contractors(self) -> CarveOutRule:
        if "sponsor_countries" in self.member_constraints and self.kind != "government_contractor":
            raise ValueError("sponsor_countries applies only to kind government_contractor")
        return self


class CarveOutMember(_Strict):
    """Countries (and organisations) Meta's statements name, from the day they were named."""

    id: Identifier
    countries: Countries
    organisations: list[Identifier] = []
    since: date
    # primary: Meta's own statement says it; reported: Meta's words as reported by others; unconfirmed: no
    # statement of Meta's was read (applied, with an obligation on every decision that rests on it).
    confidence: Literal["primary", "reported", "unconfirmed"]
    source: Citation
    notes: str | None = None


class NationalSecurityCarveOut(_Strict):
    end_uses: list[EndUse] = Field(min_length=1)
    eligible_operators: list[CarveOutRule] = Field(min_length=1)
    citation: Citation
    reading: str
    members: list[CarveOutMember] = Field(min_length=1)

    @field_validator("members")
    @classmethod
    def _members(cls, members: list[CarveOutMember]) -> list[CarveOutMember]:
        return _unique(members, "id", "carve-out member")


class LicencesFile(_Strict):
    entry_names = {"families": ("licence", "id")}
    families: list[LicenceFamily]
    national_security_carve_out: NationalSecurityCarveOut

    @field_validator("families")
    @classmethod
    def _families(cls, families: list[LicenceFamily]) -> list[LicenceFamily]:
        return _unique(families, "id", "licence family")


# --- catalogue.yaml ---------------------------------------------------------------------------------------


class Parameters(_Strict):
    total: PositiveInt
    active: PositiveInt

    @model_validator(mode="after")
    def _active_within_total(self) -> Parameters:
        if self.active > self.total:
            raise ValueError(f"active ({self.active}) cannot exceed total ({self.total})")
        return self


class Modalities(_Strict):
    input: list[Modality] = Field(min_length=1)
    output: list[Modality] = Field(min_length=1)


class TrainingCompute(_Strict):
    """As published; quantised and fine-tuned builds carry their base model's (cumulative) figure."""

    flop: PositiveFloat | None = None
    gpu_hours: PositiveInt | None = None
    notes: str | None = None


HfRepo = Annotated[str, StringConstraints(pattern=r"^meta-llama/[A-Za-z0-9._-]+$")]


class ModelVariant(_Strict):
    id: str
    hf_repo: HfRepo
    aliases: list[HfRepo] = []
    variant: Literal["base", "instruct", "safety-classifier"]
    licence: LicenceId
    precision: Literal["bf16", "fp8", "int8", "int4"]
    parameters: Parameters
    modalities: Modalities
    context_length: PositiveInt | None
    training_compute: TrainingCompute
    release_date: date | None
    citations: list[Url] = Field(min_length=1)
    notes: str | None = None

    @model_validator(mode="after")
    def _id_is_repo_name(self) -> ModelVariant:
        expected = catalogue_id(self.hf_repo)
        if self.id != expected:
            raise ValueError(f"id must be the HF repo name lower-cased: '{expected}' for {self.hf_repo}")
        return self

    @property
    def is_multimodal(self) -> bool:
        return any(m != "text" for m in [*self.modalities.input, *self.modalities.output])


def catalogue_id(hf_repo: str) -> str:
    """The catalogue id of a Hugging Face repo id: its name lower-cased, without `meta-llama/`."""
    return hf_repo.removeprefix("meta-llama/").lower()


class ParameterTolerance(_Strict):
    percent: Annotated[int, Field(gt=0, lt=100)]
    why: str


class StandInLimit(_Strict):
    count: PositiveInt
    why: str


class WeightsCheck(_Strict):
    """How a checkpoint on disk is matched to its declared variant (Rego rule weights_match)."""

    citation: Citation
    parameter_tolerance: ParameterTolerance
    stand_in_max_parameters: StandInLimit


class CatalogueFile(_Strict):
    entry_names = {"models": ("model", "id")}
    models: list[ModelVariant]
    weights_check: WeightsCheck  # after models: its check reads them

    @field_validator("models")
    @classmethod
    def _models(cls, models: list[ModelVariant]) -> list[ModelVariant]:
        _unique(models, "id", "model")
        owner: dict[str, str] = {}
        for model in models:
            for alias in (model.hf_repo.lower(), *(a.lower() for a in model.aliases)):
                if owner.setdefault(alias, model.id) != model.id:
                    raise ValueError(
                        f"alias '{alias}' of model '{model.id}' is already an alias of '{owner[alias]}'"
                    )
        return models

    @field_validator("weights_check")
    @classmethod
    def _stand_in_below_every_variant(cls, check: WeightsCheck, info: ValidationInfo) -> WeightsCheck:
        # A checkpoint this small skips the size check: no variant may be accepted at that size.
        models: list[ModelVariant] = info.data.get("models", [])
        if not models:
            return check
        limit = check.stand_in_max_parameters.count
        smallest = min(models, key=lambda model: model.parameters.total)
        accepted = smallest.parameters.total * (100 - check.parameter_tolerance.percent) // 100
        if limit >= accepted:
            raise ValueError(
                f"stand_in_max_parameters.count ({limit}) must be below the smallest size accepted for a "
                f"variant ({accepted}, model '{smallest.id}'): a real checkpoint could pass as a stand-in"
            )
        return check


# --- regions/<profile>.yaml -------------------------------------------------------------------------------


class OperatorEligibility(_Strict):
    eligible: list[OperatorRule] = Field(min_length=1)
    citation: Citation


class Placement(_Strict):
    """Countries the cluster and its weights may be in."""

    countries: Countries
    citation: Citation


class AccreditationRequirement(_Strict):
    """Per cluster country, the schemes of which the cluster must hold one that has not expired."""

    by_country: dict[Country, Annotated[list[SchemeId], Field(min_length=1)]] = Field(min_length=1)
    citation: Citation


class ModalityAllowance(_Strict):
    input: list[Modality] = Field(min_length=1)
    output: list[Modality] = Field(min_length=1)
    citation: Citation


class EndUseAllowance(_Strict):
    allowed: list[EndUse] = Field(min_length=1)
    citation: Citation


class WorkloadAllowance(_Strict):
    """What a RayService in the region may run besides its judged model: container images (repository
    prefixes, e.g. "rayproject/ray:"), Ray runtime_env keys (none unless listed), and Serve application
    builders (import paths: the project's own, whose args carry what the policy judges)."""

    images: list[Annotated[str, StringConstraints(min_length=3)]] = Field(min_length=1)
    runtime_env: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]+$")]] = []
    # Default: the project's own serving builder (serving.args.IMPORT_PATH), which no region profile needs
    # to repeat; a region that allows another builder lists every one it allows.
    import_paths: list[Annotated[str, StringConstraints(pattern=r"^[\w.]+:[\w.]+$")]] = Field(
        default=["serving.app:build_app"], min_length=1
    )
    citation: Citation


class RegionProfile(_Strict):
    description: str
    operators: OperatorEligibility
    placement: Placement
    accreditations: AccreditationRequirement | None = None
    modalities: ModalityAllowance
    end_uses: EndUseAllowance
    workloads: WorkloadAllowance
    sources: list[Url] = []


# --- screening.yaml, ai_act.yaml, codes.yaml --------------------------------------------------------------


class ScreeningSource(_Strict):
    code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]+$")]
    name: str
    agency: str
    citation: Citation


class ScreeningFile(_Strict):
    entry_names = {"sources": ("screening source", "code")}
    citation: Citation
    sources: list[ScreeningSource]

    @field_validator("sources")
    @classmethod
    def _sources(cls, sources: list[ScreeningSource]) -> list[ScreeningSource]:
        return _unique(sources, "code", "screening source")


class Transition(_Strict):
    """Art. 111(3): models placed on the market before `placed_before` have until `comply_by`."""

    placed_before: date
    comply_by: date
    citation: Citation


class Modification(_Strict):
    """When a downstream party's modification makes it the provider of the modified model."""

    share_of_original_compute: str
    citation: Citation


class SystemicRisk(_Strict):
    threshold_flop: PositiveFloat
    cluster_countries: Countries
    citation: Citation
    applies_from: date
    applies_from_citation: Citation
    transition: Transition
    modification: Modification
    reading: str


class AiActFile(_Strict):
    systemic_risk: SystemicRisk


class Code(_Strict):
    code: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]
    kind: Literal["violation", "undecided", "obligation"]  # undecided: a violation that decides nothing
    meaning: str
    citation: Citation


class CodesFile(_Strict):
    entry_names = {"codes": ("code", "code")}
    codes: list[Code]

    @field_validator("codes")
    @classmethod
    def _codes(cls, codes: list[Code]) -> list[Code]:
        return _unique(codes, "code", "code")


# --- loading ----------------------------------------------------------------------------------------------

FileModel = TypeVar("FileModel", bound=_Strict)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _describe(loc: tuple[int | str, ...], raw: Any, entries: dict[str, tuple[str, str]]) -> str:
    """The location as people read it: loc ('models', 3, 'context_length') -> model 'x': context_length."""
    if len(loc) >= 2 and loc[0] in entries and isinstance(loc[1], int) and isinstance(raw, dict):
        label, id_key = entries[str(loc[0])]
        entry = raw[loc[0]][loc[1]]
        entry_id = entry.get(id_key) if isinstance(entry, dict) else None
        name = f"{label} '{entry_id}'" if entry_id is not None else f"{label} #{loc[1] + 1}"
        return f"{name}: " + (".".join(str(part) for part in loc[2:]) or "(entry)")
    return ".".join(str(part) for part in loc) or "(file)"


def _validate(
    path: Path,
    model: type[FileModel],
    errors: list[str],
    context: dict[str, Any],
    prefix: str = "",
) -> FileModel | None:
    try:
        raw = yamldoc.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        errors.append(f"{_shown(path)}: file is missing (policies/README.md describes the data layout)")
        return None
    except yaml.YAMLError as exc:
        errors.append(f"{_shown(path)}: not valid YAML: " + " ".join(str(exc).split()))
        return None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            where = prefix + _describe(err["loc"], raw, model.entry_names)
            errors.append(f"{_shown(path)}: {where}: {err['msg'].removeprefix('Value error, ')}")
        return None


class PolicyData:
    """Every policy fact, validated; `opa_document()` is the bundle's data.json."""

    def __init__(
        self,
        *,
        countries: CountriesFile,
        accreditations: AccreditationsFile,
        licences: LicencesFile,
        catalogue: CatalogueFile,
        regions: dict[str, RegionProfile],
        screening: ScreeningFile,
        ai_act: AiActFile,
        codes: CodesFile,
    ) -> None:
        self.country_groups = {group.id: group for group in countries.groups}
        self.not_iso = {entry.code: entry for entry in countries.not_iso}  # hints only: not in data.json
        self.accreditation_schemes = {scheme.id: scheme for scheme in accreditations.schemes}
        self.licences = {family.id: family for family in licences.families}
        self.national_security_carve_out = licences.national_security_carve_out
        self.models = list(catalogue.models)
        self.weights_check = catalogue.weights_check
        self.regions = dict(sorted(regions.items()))
        self.screening = screening
        self.ai_act = ai_act
        self.codes = {code.code: code for code in codes.codes}
        self._by_name = {model.id: model for model in self.models}
        self.aliases = {
            alias.lower(): model.id for model in self.models for alias in (model.hf_repo, *model.aliases)
        }

    def model(self, id_or_alias: str) -> ModelVariant | None:
        """A catalogue id or a Hugging Face repo id (any case) -> the variant, None when unknown."""
        key = id_or_alias.lower()
        return self._by_name.get(key) or self._by_name.get(self.aliases.get(key, ""))

    @staticmethod
    def _licence_document(family: LicenceFamily) -> dict[str, Any]:
        # The month §2 counts is derived here, once, so the Rego (and Wasm) need no date arithmetic.
        document = family.model_dump(mode="json", exclude_none=True)
        document["mau_clause"]["deciding_month"] = family.deciding_month
        return document

    def opa_document(self) -> dict[str, Any]:
        def dump(model: BaseModel) -> dict[str, Any]:
            return model.model_dump(mode="json", exclude_none=True)

        return {
            "catalogue": {
                "models": {model.id: dump(model) for model in self.models},
                "aliases": dict(sorted(self.aliases.items())),
                "weights_check": dump(self.weights_check),
            },
            "licences": {key: self._licence_document(family) for key, family in self.licences.items()},
            "national_security_carve_out": dump(self.national_security_carve_out),
            "regions": {name: dump(profile) for name, profile in self.regions.items()},
            "countries": {key: dump(group) for key, group in self.country_groups.items()},
            "accreditations": {key: dump(scheme) for key, scheme in self.accreditation_schemes.items()},
            "screening": {
                "citation": self.screening.citation,
                "sources": {source.code: dump(source) for source in self.screening.sources},
            },
            "ai_act": dump(self.ai_act),
            "codes": {key: dump(code) for key, code in self.codes.items()},
        }


def load_policy_data(folder: Path = DEFAULT_DATA_DIR) -> PolicyData:
    """Load and validate every file; raise BadInput listing each problem as 'file: entry: field: message'."""
    folder = Path(folder)
    errors: list[str] = []
    context: dict[str, Any] = {}
    countries = _validate(folder / "countries.yaml", CountriesFile, errors, context)
    # Later files refer to groups, schemes and licence families: without them their checks would mislead.
    if countries is None:
        raise BadInput("\n".join(errors))
    context["country_groups"] = {group.id: group for group in countries.groups}
    accreditations = _validate(folder / "accreditations.yaml", AccreditationsFile, errors, context)
    licences = _validate(folder / "licences.yaml", LicencesFile, errors, context)
    if accreditations is None or licences is None:
        raise BadInput("\n".join(errors))
    context["schemes"] = {scheme.id for scheme in accreditations.schemes}
    context["licences"] = {family.id for family in licences.families}

    catalogue = _validate(folder / "catalogue.yaml", CatalogueFile, errors, context)
    screening = _validate(folder / "screening.yaml", ScreeningFile, errors, context)
    ai_act = _validate(folder / "ai_act.yaml", AiActFile, errors, context)
    codes = _validate(folder / "codes.yaml", CodesFile, errors, context)
    regions: dict[str, RegionProfile] = {}
    region_files = sorted((folder / "regions").glob("*.yaml"))
    if not region_files:
        errors.append(f"{_shown(folder / 'regions')}: no region profiles (<name>.yaml) found")
    for path in region_files:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", path.stem):
            errors.append(f"{_shown(path)}: a profile's file name is its region name: use a-z, 0-9 and '-'")
            continue
        profile = _validate(path, RegionProfile, errors, context, prefix=f"region '{path.stem}': ")
        if profile is not None:
            regions[path.stem] = profile

    if errors or catalogue is None or screening is None or ai_act is None or codes is None:
        raise BadInput("\n".join(errors))
    return PolicyData(
        countries=countries,
        accreditations=accreditations,
        licences=licences,
        catalogue=catalogue,
        regions=regions,
        screening=screening,
        ai_act=ai_act,
        codes=codes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sovereign.policydata",
        description="Validate policies/data and write the compiled data.json that the policy bundle carries.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="source folder (policies/data)")
    parser.add_argument("--out", type=Path, required=True, help="where to write data.json")
    args = parser.parse_args(argv)
    try:
        document = load_policy_data(args.data).opa_document()
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
