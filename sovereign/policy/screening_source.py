"""Where screening gets its list, and the facts a `Judge` adds to each decision from it.

One setting for every consumer, like the policy bundle: `$SOVEREIGN_SCREENING_LIST` (or a command's
`--screening-list`), else the dated sample `sovereign dev up` installs in the state dir for local
development. Enforcement points (admission, reconcile, drift, ClusterRequests, the Pulumi policy pack, the
serving guard and replica) *require* screening: a production process without a list refuses to start,
naming the setting, and a list that stops being current (it ages past its limit, or is replaced by a bad
file) makes each decision undecided (SCREENING_UNAVAILABLE) until a current one is in place. `sovereign
decide` and the matrix do not require it: without a list they decide and say screening was not performed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sovereign.errors import BadInput
from sovereign.policy.screening import (
    CSL_DOWNLOAD,
    SAMPLE_LIST,
    ScreeningList,
    allow_sample_from_env,
    max_age_from_env,
)
from sovereign.state_dir import state_root

SCREENING_LIST_ENV = "SOVEREIGN_SCREENING_LIST"
SETTING = f"${SCREENING_LIST_ENV} (or --screening-list)"
NO_LIST = (
    f"no denied-party screening list is configured: set {SETTING} to the Consolidated Screening List "
    f"JSON; {CSL_DOWNLOAD}. For local development `sovereign dev up` installs a sample list"
)

ScreeningFacts = Callable[[str, date], dict[str, Any]]  # organisation name, decision date -> input.screening


def dev_sample_path() -> Path:
    return state_root() / "screening" / "dev-sample.json"


def install_dev_sample(now: datetime | None = None) -> Path:
    """What `sovereign dev up` and the demo do: the shipped sample, still marked as a sample, dated `now`
    (each source's source_last_updated), where every local process finds it by default."""
    stamp = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    doc = json.loads(SAMPLE_LIST.read_text())
    for source in doc["sources_used"]:
        source["source_last_updated"] = stamp
    doc["note"] = f"{doc['note']} Installed by `sovereign dev up` on {stamp}."
    path = dev_sample_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(doc, indent=2))
    scratch.replace(path)  # a process re-reading the list never sees half a file
    return path


@dataclass(frozen=True)
class ListSetting:
    """The list a process screens with, where the setting came from, and whether a sample may stand in."""

    path: Path | None
    origin: str
    allow_sample: bool


def configured_list(explicit: Path | None = None, *, enforcing: bool) -> ListSetting:
    """The list named by `explicit` (a command's option), else by $SOVEREIGN_SCREENING_LIST; at an
    enforcement point (`enforcing`), else the dev sample, else a BadInput naming the setting: a process
    that enforces the policy does not start without one. Elsewhere (decide, matrix) no list is allowed."""
    if explicit is None and (named := os.environ.get(SCREENING_LIST_ENV, "").strip()):
        explicit = Path(named)
    if explicit is not None:
        if not explicit.is_file():
            raise BadInput(f"{SETTING} {explicit}: no such file; {CSL_DOWNLOAD}")
        return ListSetting(explicit, SETTING, allow_sample_from_env())
    if not enforcing:
        return ListSetting(None, "none", False)
    if dev_sample_path().is_file():
        # Only `sovereign dev up` writes here, and only for local development: its sample is accepted.
        return ListSetting(dev_sample_path(), "the sample installed by `sovereign dev up`", True)
    raise BadInput(f"{NO_LIST}; refusing to start an enforcement point that would screen nobody")


class Screening:
    """The `input.screening` facts for an organisation on a decision date, from the list at `path`.

    The file is re-read when it changes (replace it to update the list; no restart), and checked current
    on each decision date. Not `required`: a list that cannot be used is the caller's BadInput, and no list
    means `{performed: false}`. `required`: neither raises; the facts say `{performed: false, required:
    true, problem}` and the policy answers SCREENING_UNAVAILABLE.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        required: bool,
        max_age: timedelta | None = None,
        allow_sample: bool | None = None,
        problem: str | None = NO_LIST,
    ) -> None:
        self.path = path
        self.required = required
        self.problem = problem if path is None else None  # why there is no list
        self.max_age = max_age_from_env() if max_age is None else max_age
        self.allow_sample = allow_sample_from_env() if allow_sample is None else allow_sample
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._list: ScreeningList | BadInput | None = None
        self._current: dict[date, BadInput | None] = {}
        self._hits: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def enforcing(cls, explicit: Path | None = None, *, refuse_to_start: bool = True) -> Screening:
        """The screening of an enforcement point. None configured: a BadInput naming the setting, or, for
        a process that must answer anyway (a serving replica), screening whose every answer says so."""
        try:
            setting = configured_list(explicit, enforcing=True)
        except BadInput as exc:
            if refuse_to_start:
                raise
            return cls(None, required=True, problem=str(exc))
        return cls(setting.path, required=True, allow_sample=setting.allow_sample)

    @classmethod
    def advisory(cls, explicit: Path | None, as_of: date) -> Screening:
        """The screening of `sovereign decide` and the matrix: optional, but a list given must be current
        at `as_of` (BadInput otherwise)."""
        setting = configured_list(explicit, enforcing=False)
        screening = cls(setting.path, required=False, allow_sample=setting.allow_sample)
        if setting.path is not None:
            screening.check(as_of)
        return screening

    def version(self) -> tuple[int, int] | None:
        """The list file's (mtime, size) now: a change means decisions may change (drift re-judges)."""
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def check(self, as_of: date) -> None:
        """Raise the BadInput that makes the list unusable on `as_of`."""
        if self.path is not None and (problem := self._problem(as_of)) is not None:
            raise problem

    def __call__(self, name: str, as_of: date) -> dict[str, Any]:
        required = {"required": True} if self.required else {}
        problem = self.problem if self.path is None else self._problem(as_of)
        if isinstance(problem, BadInput) and not self.required:
            raise problem
        if problem is not None:
            unavailable = {"required": True, "problem": str(problem)} if self.required else {}
            return {"performed": False, "hits": [], **unavailable}
        with self._lock:
            listed = self._list
            hits = self._hits.get(name)
        if hits is None:
            assert isinstance(listed, ScreeningList)
            hits = listed.screen(name)  # fuzzy matching over the whole list: once per name and list
            with self._lock:
                if self._list is listed:  # not re-read meanwhile
                    self._hits[name] = hits
        return {"performed": True, "hits": hits, **required}

    def _problem(self, as_of: date) -> BadInput | None:
        assert self.path is not None
        version = self.version()
        with self._lock:
            if version != self._version or self._list is None:
                self._version, self._current, self._hits = version, {}, {}
                try:
                    self._list = ScreeningList.read(self.path)
                except BadInput as exc:
                    self._list = exc
            listed = self._list
            if isinstance(listed, BadInput):
                return listed
            if as_of not in self._current:
                try:
                    listed.check_current(as_of, max_age=self.max_age, allow_sample=self.allow_sample)
                    self._current[as_of] = None
                except BadInput as exc:
                    self._current[as_of] = exc
            return self._current[as_of]
