"""The fleet file: each region's kubeconfig (and context) and Prometheus, in YAML.

regions:
  us-defense:
    kubeconfig: us-defense/kubeconfig     # relative paths are read from the fleet file's folder
    context: admin                        # optional: the kubeconfig's current context otherwise
    prometheus: http://127.0.0.1:9090     # optional: GPU figures are then unavailable
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import yaml
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sovereign.errors import BadInput, SovereignError
from sovereign.policy.decision_input import describe_errors

if TYPE_CHECKING:
    from operators.sovereign_operator.kube import Kube

FLEET_ENV = "SOVEREIGN_FLEET"
# Seconds one API call to a region may take: a region that does not answer is reported, not waited on.
REGION_TIMEOUT_S = 10.0
T = TypeVar("T")
# What each field wants, said with the error that names it.
_FIXES = {
    "regions": "a map of region name -> {kubeconfig, context, prometheus}",
    "kubeconfig": "the path of the region's kubeconfig",
    "context": "a context of that kubeconfig",
    "prometheus": "Prometheus' base URL, e.g. http://127.0.0.1:9090",
}
RegionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class RegionUnreachable(SovereignError):
    """A region's API server could not be read: the message says why."""


class FleetRegion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: Path
    context: str | None = None
    prometheus: AnyHttpUrl | None = None

    @property
    def prometheus_url(self) -> str | None:
        return str(self.prometheus).rstrip("/") if self.prometheus else None

    def read(self, what: Callable[[Kube], T]) -> T:
        """`what` done on the region's API server; RegionUnreachable saying why it could not be."""
        # Imported here: the CLI reads its options from this module, and most commands never call a region.
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException
        from urllib3.exceptions import HTTPError, MaxRetryError

        from operators.sovereign_operator.kube import Kube, api_client, api_error

        try:
            # No retries: a region that does not answer is reported at once (and publishing refused).
            api = api_client(self.kubeconfig, self.context, retries=0)
            return what(Kube(api, timeout_s=REGION_TIMEOUT_S))
        except ApiException as exc:
            raise RegionUnreachable(f"the API server refused: {api_error(exc)}") from exc
        except MaxRetryError as exc:
            # urllib3 names the connection object first; the cause after it is what a reader needs.
            cause = str(exc.reason).split(": ", 1)[-1]
            raise RegionUnreachable(
                f"the API server at {exc.pool.host}:{exc.pool.port} is unreachable: {cause}"
            ) from exc
        except (HTTPError, OSError) as exc:
            raise RegionUnreachable(f"the API server is unreachable: {type(exc).__name__}: {exc}") from exc
        except ConfigException as exc:
            raise RegionUnreachable(f"kubeconfig {self.kubeconfig}: {exc}") from exc


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: dict[RegionName, FleetRegion] = Field(min_length=1)


def _fix(loc: tuple[int | str, ...]) -> str | None:
    """What the field at `loc` wants, when the error is about its value (not an unknown field)."""
    if len(loc) == 2 and loc[0] == "regions":
        return "a mapping with kubeconfig (required), context and prometheus"
    if loc and loc[-1] == "[key]":
        return "a region name of letters, digits, '.', '_' and '-'"
    return _FIXES.get(str(loc[-1])) if loc else None


def _describe(exc: ValidationError) -> str:
    lines = describe_errors(exc, "").splitlines()
    fixed = []
    for line, error in zip(lines, exc.errors(), strict=True):
        fix = None if error["type"] == "extra_forbidden" else _fix(error["loc"])
        fixed.append(f"{line}; expected {fix}" if fix else line)
    return "\n".join(fixed)


def _check_kubeconfig(name: str, region: FleetRegion) -> list[str]:
    where = f"regions.{name}"
    try:
        doc = yaml.safe_load(region.kubeconfig.read_text())
    except OSError as exc:
        problem = f"cannot read {region.kubeconfig} ({exc.strerror})"
        return [f"{where}.kubeconfig: {problem}; give {_FIXES['kubeconfig']}"]
    except yaml.YAMLError:
        return [f"{where}.kubeconfig: {region.kubeconfig} is not YAML; give {_FIXES['kubeconfig']}"]
    contexts = [c.get("name") for c in (doc or {}).get("contexts") or [] if isinstance(c, dict)]
    if region.context is not None and region.context not in contexts:
        return [
            f"{where}.context: {region.kubeconfig} has no context {region.context!r} "
            f"(it has: {', '.join(map(str, contexts)) or 'none'}); name one of them or leave it out"
        ]
    return []


def load_fleet(path: Path) -> FleetFile:
    """The fleet file at `path`, its kubeconfig paths made absolute; BadInput naming each wrong field and
    its fix (nothing is read from any region before the whole file is right)."""
    try:
        doc: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BadInput(
            f"{path}: cannot read the fleet file ({exc.strerror}); give --fleet or ${FLEET_ENV}"
        ) from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: not a fleet file: give a YAML mapping with `regions:`, {_FIXES['regions']}")
    try:
        fleet = FleetFile.model_validate(doc)
    except ValidationError as exc:
        raise BadInput(f"{path}: invalid fleet file\n{_describe(exc)}") from None
    regions = {
        name: region.model_copy(update={"kubeconfig": (path.parent / region.kubeconfig).resolve()})
        for name, region in fleet.regions.items()
    }
    if problems := [line for name, region in regions.items() for line in _check_kubeconfig(name, region)]:
        raise BadInput(f"{path}: invalid fleet file\n" + "\n".join(problems))
    return FleetFile(regions=regions)


def write_fleet(path: Path, fleet: FleetFile) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fleet.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path
