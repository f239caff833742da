"""The serving gateway under load and under faults (issue 17, item 4).

One local Ray serves the real app (`serving.app:build_app`: the OpenAI-compatible ingress with its guard,
and the tiny text Llama standing in for llama-3.1-8b-instruct) for the EU text-only cluster
eu-frankfurt-1. The guard judges every request through a real `opa run --server` on the signed bundle
(the REST engine), so that OPA can be killed under it. The load is N clients (the official `openai`
client, one per client, each one request at a time) mixing allowed chat completions, image requests the
region refuses (403 REGION_MODALITY) and streamed chat completions, 2:1:1.

Phases (`--phases`, default all three):

- load: the load for `--seconds`;
- faults: the same load while OPA is SIGKILLed (15 % into the run), started again (20 % later), and
  the ingress replica, the guard's home, killed with `ray.kill` (20 % after OPA is back) for Serve to
  replace;
- operator: a fresh control plane and `sovereign operator run`; `--deployments` LlamaDeployments are
  submitted, the operator is SIGKILLed once a quarter of their RayServices exist, started again, and
  the rollout must converge with exactly one RayService per deployment.

Every answer is classified: served (200 with the guard's `x-sovereign-request-id`), policy refusal (the
guard's 4xx with its reason codes), fail-closed (the guard's 503), unguarded (a 200 without the guard's
id) or error (timeouts, connection errors, a 5xx or 4xx that is not the guard's, an error mid-stream).
Each 200 must also have its `allowed` record in the decision log the replicas write.

Must hold (exit 1 otherwise): no error but for requests in flight on the killed replica; no image
served; no 200 unguarded or without its decision record; after OPA is killed the first 503 within 1 s,
and from 1 s after the kill until OPA is started again no 200 judged (the record's time) nor sent and
answered; a 200 after OPA's restart and after the replica's; the rollout killed midway, all RayServices
there, none duplicated, each owned by its deployment.

    .venv/bin/python benchmarks/load_bench.py [--clients 200] [--seconds 60] [--phases load,faults,operator]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
from report import load, machine, show

if TYPE_CHECKING:  # for the hints: the stack's modules are imported where it is started
    from operators.localrun import LocalOpa
    from serving.dataplane import LocalRay

REQUEST_ID_HEADER = "x-sovereign-request-id"  # serving.ingress's; not imported, so no Ray to load here
TENANT_HEADER = "x-tenant-id"
# Enough for the guard to see an image (the region refuses it before any model would read it).
IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE="}}
FAIL_CLOSED_WITHIN_S = 1.0
# The faults run, in fractions of --seconds: OPA killed after 15 %, down for 20 %; 20 % after it is ready
# again, the ingress replica killed.
OPA_KILL_AT, OPA_DOWN, BEFORE_REPLICA_KILL = 0.15, 0.2, 0.2


class Kind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    STREAM = "stream"


MIX = (Kind.TEXT, Kind.IMAGE, Kind.TEXT, Kind.STREAM)


class Outcome(StrEnum):
    SERVED = "served"
    REFUSED = "policy refusal"
    FAIL_CLOSED = "fail-closed 503"
    UNGUARDED = "200 unguarded"
    ERROR = "error"


@dataclass(frozen=True)
class Answer:
    """One request and how it was answered; times are wall-clock seconds (comparable with the log's)."""

    kind: Kind
    sent: float
    done: float
    outcome: Outcome
    status: int | None
    code: str  # the policy's reason code, or what went wrong
    request_id: str | None = None

    @property
    def ms(self) -> float:
        return (self.done - self.sent) * 1000


def classify(status: int, request_id: str | None, error: object) -> tuple[Outcome, str]:
    """What an HTTP answer is: the guard's answers carry its request id, and its refusals the policy's
    codes; anything else is not the guard speaking."""
    if status == 200:
        return (Outcome.SERVED, "ok") if request_id else (Outcome.UNGUARDED, "ok")
    guard_said = isinstance(error, dict) and request_id is not None and "codes" in error
    code = str(error.get("code")) if isinstance(error, dict) else f"http_{status}"
    if guard_said and status == 503:
        return Outcome.FAIL_CLOSED, code
    if guard_said and 400 <= status < 500:
        return Outcome.REFUSED, code
    return Outcome.ERROR, code


# --- the load -----------------------------------------------------------------------------------------------


def _request(kind: Kind, i: int, max_tokens: int) -> dict[str, Any]:
    """The chat completion's arguments: serving_bench's request, with an image part, or streamed."""
    from serving_bench import request_body  # imports Ray Serve: only where requests are made

    body = request_body(i, max_tokens)
    if kind is Kind.IMAGE:
        question = body["messages"][-1]["content"]
        body["messages"][-1] = {"role": "user", "content": [{"type": "text", "text": question}, IMAGE_PART]}
    return {**body, "stream": kind is Kind.STREAM}


async def ask(client: openai.AsyncOpenAI, kind: Kind, i: int, max_tokens: int) -> Answer:
    sent = time.time()
    request_id: str | None = None
    try:
        raw = await client.chat.completions.with_raw_response.create(**_request(kind, i, max_tokens))
        request_id = raw.headers.get(REQUEST_ID_HEADER)
        reply = raw.parse()
        if kind is Kind.STREAM:
            # The whole stream is the answer: an error event mid-stream raises openai.APIError here.
            chunks = [chunk async for chunk in reply]  # type: ignore[union-attr]
            if not any(c.choices and c.choices[0].finish_reason for c in chunks):
                return Answer(kind, sent, time.time(), Outcome.ERROR, 200, "stream_unfinished", request_id)
        outcome, code = classify(raw.status_code, request_id, None)
        return Answer(kind, sent, time.time(), outcome, raw.status_code, code, request_id)
    except openai.APIStatusError as exc:
        request_id = exc.response.headers.get(REQUEST_ID_HEADER)
        outcome, code = classify(exc.status_code, request_id, exc.body)
        return Answer(kind, sent, time.time(), outcome, exc.status_code, code, request_id)
    except openai.APITimeoutError:
        return Answer(kind, sent, time.time(), Outcome.ERROR, None, "timeout", request_id)
    except openai.APIConnectionError as exc:
        return Answer(
            kind, sent, time.time(), Outcome.ERROR, None, f"connection: {type(exc.__cause__).__name__}"
        )
    except openai.APIError as exc:  # an error event in a stream whose 200 was already sent
        return Answer(kind, sent, time.time(), Outcome.ERROR, 200, f"stream: {exc.message}", request_id)


@dataclass
class Timeline:
    """The faults injected in a run, by name: (begun, done) in wall-clock seconds."""

    start: float
    events: dict[str, tuple[float, float]] = field(default_factory=dict)

    def at(self, name: str) -> float | None:
        return self.events[name][0] if name in self.events else None

    def ended(self, name: str) -> float | None:
        return self.events[name][1] if name in self.events else None


Fault = tuple[float, str, Callable[[], Any]]  # (seconds after the previous one ended, name, action)


async def _lag(stop: asyncio.Event, lags: list[float], period: float = 0.1) -> None:
    """How late the clients' event loop wakes: its lag is in every latency measured, so it is reported."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - asked - period) * 1000)


@dataclass
class Run:
    answers: list[Answer]
    timeline: Timeline
    loop_lag_ms: list[float]


async def _clients(
    url: str, options: argparse.Namespace, timeline: Timeline, started: threading.Event
) -> Run:
    """`options.clients` clients for `options.seconds`; `started` is set when the clock starts."""
    answers: list[Answer] = []
    clients, max_tokens = options.clients, options.max_tokens
    # One client, one connection, one request at a time, as N users of the API would be. Made before the
    # clock starts: making hundreds (each its own TLS context) takes seconds of CPU.
    made = [
        openai.AsyncOpenAI(
            base_url=url,
            api_key="unused",
            max_retries=0,
            timeout=options.timeout,
            default_headers={TENANT_HEADER: f"load-{index % 10}"},
        )
        for index in range(clients)
    ]
    timeline.start = time.time()
    deadline = timeline.start + options.seconds
    started.set()

    async def one_client(index: int) -> None:
        async with made[index] as client:
            i = index
            while time.time() < deadline:
                answers.append(await ask(client, MIX[i % len(MIX)], i, max_tokens))
                i += clients

    lags: list[float] = []
    lag_stop = asyncio.Event()
    lag = asyncio.create_task(_lag(lag_stop, lags))
    try:
        await asyncio.gather(*(one_client(c) for c in range(clients)))
    finally:
        lag_stop.set()
        await lag
    return Run(answers, timeline, lags)


def drive(url: str, options: argparse.Namespace, faults: list[Fault]) -> Run:
    """The clients, their event loop in a thread of its own, and each fault in turn, `gap` seconds after
    the previous one ended (the first after the start), from this thread. Not the other way round: a
    process started from a thread gets SIGKILL when that thread ends (ManagedProcess's PDEATHSIG), and
    OPA started again from a short-lived thread went down with it."""
    timeline, started, finished = Timeline(0.0), threading.Event(), threading.Event()
    outcome: list[Run | BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(_clients(url, options, timeline, started)))
        except BaseException as exc:  # re-raised below, in the caller's thread
            outcome.append(exc)
        finally:
            started.set()
            finished.set()

    thread = threading.Thread(target=run, name="load-clients", daemon=True)
    thread.start()
    started.wait()
    for gap, name, action in faults:
        if finished.wait(gap):
            break
        begun = time.time()
        action()
        timeline.events[name] = (begun, time.time())
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


# --- what must hold -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    met: bool
    detail: str


def _first(answers: Iterable[Answer], after: float, outcome: Outcome, by: str = "done") -> Answer | None:
    """The first answer (by its `by` time) of `outcome` whose `by` time is at or after `after`."""
    matching = [a for a in answers if a.outcome is outcome and getattr(a, by) >= after]
    return min(matching, key=lambda a: getattr(a, by), default=None)


def _replica_window(answers: list[Answer], timeline: Timeline) -> tuple[float, float] | None:
    """From the replica's kill to the first 200 after it: requests in flight on the replica when it was
    killed may fail meanwhile (Serve retries none); any other error is the gateway's."""
    killed = timeline.at("replica killed")
    if killed is None:
        return None
    back = _first(answers, killed, Outcome.SERVED, by="sent")
    return killed, back.done if back else float("inf")


def checks(
    answers: list[Answer], timeline: Timeline | None, records: dict[str, Logged] | None
) -> list[Check]:
    """The must-holds of one run. `records`: the decision log's serving records by request id (None: the
    log was not read)."""
    found: list[Check] = []
    window = _replica_window(answers, timeline) if timeline else None
    errors = [a for a in answers if a.outcome is Outcome.ERROR]
    excused = [a for a in errors if window and a.sent < window[0] <= a.done <= window[1]]
    found.append(
        Check(
            "no error that is not a policy answer"
            + (" (but for requests in flight on the killed replica)" if window else ""),
            len(errors) == len(excused),
            f"{len(errors) - len(excused)} errors"
            + (f"; {len(excused)} in flight on the killed replica" if window else "")
            + (f" ({dict(Counter(a.code for a in errors).most_common(3))})" if errors else ""),
        )
    )
    images = [a for a in answers if a.kind is Kind.IMAGE and a.outcome in (Outcome.SERVED, Outcome.UNGUARDED)]
    found.append(Check("no image request served", not images, f"{len(images)} image requests answered 200"))
    served = [a for a in answers if a.outcome is Outcome.SERVED]
    unguarded = [a for a in answers if a.outcome is Outcome.UNGUARDED]
    detail = f"{len(unguarded)} of {len(served) + len(unguarded)} 200s without the guard's request id"
    unrecorded: list[Answer] = []
    if records is not None:
        unrecorded = [a for a in served if not (r := records.get(str(a.request_id))) or not r.allow]
        detail += f"; {len(unrecorded)} without an allowed decision record"
    found.append(Check("every 200 from the guard", not unguarded and not unrecorded, detail))
    if timeline is None:
        return found

    killed, restarted = timeline.at("OPA killed"), timeline.at("OPA restarted")
    if killed is not None and restarted is not None:
        first_503 = _first(answers, killed, Outcome.FAIL_CLOSED)
        delay = first_503.done - killed if first_503 else None
        found.append(
            Check(
                f"503 within {FAIL_CLOSED_WITHIN_S:.0f} s of OPA's kill",
                delay is not None and delay <= FAIL_CLOSED_WITHIN_S,
                "no 503" if delay is None else f"first 503 after {delay * 1000:.0f} ms",
            )
        )
        down = (killed + FAIL_CLOSED_WITHIN_S, restarted)
        # Sent and answered within the outage: judged within it too, whatever the log says. (A request
        # sent then but judged after the restart, having waited in Serve's queue, is rightly served.)
        sent_down = [a for a in served if down[0] <= a.sent and a.done < down[1]]
        detail = f"{len(sent_down)} 200s sent and answered while OPA was down"
        judged_down: list[Answer] = []
        if records is not None:
            judged_down = [
                a
                for a in served
                if (record := records.get(str(a.request_id))) and down[0] <= record.time < down[1]
            ]
            detail += f"; {len(judged_down)} 200s judged while it was down (decision log)"
        found.append(Check("no 200 while OPA is down", not sent_down and not judged_down, detail))
        back = _first(answers, restarted, Outcome.SERVED, by="sent")
        found.append(
            Check(
                "a 200 after OPA's restart",
                back is not None,
                f"first after {back.done - restarted:.2f} s" if back else "none",
            )
        )
    if window is not None:
        found.append(
            Check(
                "a 200 after the replica's kill (Serve replaced it)",
                window[1] != float("inf"),
                f"first after {window[1] - window[0]:.2f} s" if window[1] != float("inf") else "none",
            )
        )
    return found


# --- the serving stack --------------------------------------------------------------------------------------


def _dev_state(root: Path) -> None:
    """This process and what it starts use a state dir of their own under `root`, as after `sovereign dev
    up`: the bundle built there, the dated screening sample, OPA's token and the audit key."""
    from sovereign.audit.keys import ensure_key as ensure_audit_key
    from sovereign.audit.location import AUDIT_DIR_ENV
    from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV
    from sovereign.policy.opa_token import TOKEN_ENV, server_token
    from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample

    os.environ["SOVEREIGN_STATE_DIR"] = str(root)
    for name in (BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SCREENING_LIST_ENV, TOKEN_ENV, AUDIT_DIR_ENV):
        os.environ.pop(name, None)
    os.environ.pop("SOVEREIGN_OPA_URL", None)
    install_dev_sample()
    server_token()
    ensure_audit_key()


def _text_model(workdir: Path) -> Path:
    """The tiny text model, copied from the build cache and signed by this state dir's dev signer (the
    shared cache is left as other runs signed it)."""
    from sovereign.models.signing import DEV_SIGNER, sign_checkpoint
    from sovereign.models.tiny import TINY_MODELS, build_model, models_dir

    model = next(m for m in TINY_MODELS if m.name == "tiny-llama-text")
    cached, _ = build_model(model, models_dir())
    folder = workdir / "models" / model.name
    shutil.copytree(cached, folder)
    sign_checkpoint(folder, DEV_SIGNER)
    return folder


@dataclass
class Gateway:
    url: str  # the OpenAI base URL
    opa: LocalOpa
    ray: LocalRay


@contextmanager
def serving(workdir: Path, max_tokens: int) -> Iterator[Gateway]:
    """OPA on the signed bundle, a local Ray serving the app whose guard asks that OPA; stopped after."""
    from serving_bench import serving_args

    from operators.localrun import LocalOpa
    from serving.dataplane import DataPlane, LocalRay, free_port
    from serving.manifest import rayservice
    from sovereign.policy.bundle import build_bundle

    opa = LocalOpa(workdir / "opa", build_bundle(progress=lambda _: None))
    args = serving_args(_text_model(workdir), max_tokens)
    service = rayservice("load", "eu", args, runtime_env={"env_vars": {"SOVEREIGN_OPA_URL": opa.url}})
    ray = LocalRay(num_cpus=2, http_port=free_port())
    with ExitStack() as started:
        opa.start()
        started.callback(opa.stop)
        _start(ray)
        started.callback(ray.stop)
        plane = DataPlane(ray, progress=lambda _: None)
        deadline = time.monotonic() + 900  # a loaded 2-core machine has taken over 5 min
        while not all(s["serviceStatus"] == "Running" for s in plane.reconcile([service]).values()):
            if time.monotonic() > deadline:
                raise SystemExit(f"the app did not start: {ray.applications()}")
            time.sleep(1)
        yield Gateway(f"{ray.url}/load/eu/v1", opa, ray)


def _start(local: LocalRay, tries: int = 3) -> None:
    """Start the local Ray, again if its raylet did not register within Ray's fixed 30 s (seen here with
    the load average above 20)."""
    import ray

    for attempt in range(1, tries + 1):
        try:
            local.start()
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == tries:
                raise
            ray.shutdown()


def replicas(deployment: str) -> list[str]:
    """The names of `deployment`'s live Serve replica actors (named SERVE_REPLICA::app#deployment#id)."""
    import ray

    return sorted(
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::") and f"#{deployment}#" in actor["name"]
    )


def kill_replica(deployment: str) -> str:
    """Kill the replica's actor (its worker process goes with it); Serve's controller must replace it."""
    import ray

    (name,) = replicas(deployment)
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name


@dataclass(frozen=True)
class Logged:
    """A request's decision record, as far as the checks need it."""

    time: float  # wall-clock seconds
    verdict: str  # allowed, denied, undecided
    segment: str  # the log segment: one per replica process

    @property
    def allow(self) -> bool:
        return self.verdict == "allowed"


def decision_records() -> dict[str, Logged]:
    """The serving decision records the replicas wrote, by request id."""
    from sovereign.audit.location import audit_dir
    from sovereign.audit.query import Query, read_records
    from sovereign.audit.record import Point

    logged, _ = read_records(audit_dir(), Query(point=Point.SERVING))
    prefix = "request "
    return {
        r.record.subject.removeprefix(prefix): Logged(
            r.record.time.timestamp(), r.record.verdict, r.record_id.rpartition(":")[0]
        )
        for r in logged
        if r.record.subject.startswith(prefix)
    }


def _warm_up(url: str, max_tokens: int) -> None:
    """A few requests of each kind, one by one: connections made, code paths compiled."""

    async def run() -> list[Answer]:
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120) as client:
            return [await ask(client, kind, i, max_tokens) for i, kind in enumerate(MIX * 3)]

    wrong = [a for a in asyncio.run(run()) if (a.outcome is Outcome.SERVED) == (a.kind is Kind.IMAGE)]
    if wrong:
        raise SystemExit(f"the warm-up was not answered as expected: {wrong}")


def load_phase(gateway: Gateway, options: argparse.Namespace) -> Run:
    return drive(gateway.url, options, [])


def faults_phase(gateway: Gateway, options: argparse.Namespace) -> Run:
    """The load, with OPA killed and started again, then the ingress replica killed."""
    replaced: dict[str, float] = {}
    stop = threading.Event()

    def kill_ingress() -> None:
        killed = kill_replica("SovereignIngress")

        def watch() -> None:  # when Serve has a new replica actor in place of the killed one
            while not stop.is_set():
                if any(name != killed for name in replicas("SovereignIngress")):
                    replaced["at"] = time.time()
                    return
                time.sleep(0.1)

        threading.Thread(target=watch, daemon=True).start()

    seconds = options.seconds
    faults: list[Fault] = [
        (OPA_KILL_AT * seconds, "OPA killed", gateway.opa.kill),
        (OPA_DOWN * seconds, "OPA restarted", gateway.opa.start),
        (BEFORE_REPLICA_KILL * seconds, "replica killed", kill_ingress),
    ]
    try:
        run = drive(gateway.url, options, faults)
    finally:
        stop.set()
    if "at" in replaced:
        run.timeline.events["replica replaced"] = (replaced["at"], replaced["at"])
    return run


# --- the operator -------------------------------------------------------------------------------------------


def _submit(operator: Any, bodies: list[dict[str, Any]], uids: dict[str, str], refused: Counter[str]) -> None:
    """Create every object, eight clients at once, as a pipeline would: a create refused because the
    operator's webhook is down (failurePolicy Fail) is tried again, one that exists already was made."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes.client.exceptions import ApiException

    def create(body: dict[str, Any]) -> None:
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        while True:
            try:
                created = operator.create(body)
            except ApiException as exc:
                if exc.status == 409:  # made by a try whose answer was lost
                    created = operator.get("llamadeployments", name, namespace)
                elif exc.status is not None and exc.status >= 500:
                    refused[f"HTTP {exc.status}"] += 1
                    time.sleep(0.2)
                    continue
                else:
                    raise
            uids[name] = created["metadata"]["uid"]
            return

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, bodies))


def operator_phase(workdir: Path, count: int) -> tuple[dict[str, Any], list[Check]]:
    """Submit `count` LlamaDeployments; SIGKILL the operator once a quarter of their RayServices exist and
    start it again (the webhook refuses creates meanwhile: they are tried again): the rollout must
    converge to exactly one RayService per deployment, owned by it."""

    from operator_env import bench_cluster, bench_deployments

    from operators.localrun import LocalOperator, wait_until
    from operators.sovereign_operator import rayservice
    from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig
    from sovereign.policy import subjects
    from sovereign.policy.bundle import build_bundle

    bundle = build_bundle(progress=lambda _: None)
    plane = ControlPlane(
        ControlPlaneConfig(name="load", state_dir=workdir / "controlplane"), progress=lambda _: None
    )
    plane.start()
    operator = LocalOperator(plane.kubeconfig, plane.pki_dir, workdir / "operator", bundle)
    namespace = "bench"  # a tenant of bench_cluster's clusters
    figures: dict[str, Any] = {"deployments": count}
    uids: dict[str, str] = {}
    refused: Counter[str] = Counter()
    try:
        operator.setup()
        operator.start_opa()
        operator.start()
        operator.onboard(namespace)
        cluster = bench_cluster(0, "us-defense", None)
        operator.create(subjects.sovereign_cluster(cluster))
        bodies = bench_deployments(cluster, namespace, count, "research")
        start = time.time()
        submitter = threading.Thread(target=_submit, args=(operator, bodies, uids, refused), daemon=True)
        submitter.start()
        wait_until(
            lambda: len(operator.list("rayservices", namespace)) >= count // 4,
            300,
            "a quarter of the rollout",
            interval=0.05,
        )
        operator.kill()
        figures["killed_s"] = time.time() - start
        figures["at_kill"] = len(operator.list("rayservices", namespace))
        operator.start()
        figures["restarted_s"] = time.time() - start
        submitter.join(timeout=600)
        figures["submitted_s"] = time.time() - start
        figures["refused_creates"] = sum(refused.values())

        def converged() -> bool:
            running = [
                d
                for d in operator.list("llamadeployments", namespace)
                if d.get("status", {}).get("phase") == "Running"
            ]
            return len(running) == count and len(operator.list("rayservices", namespace)) >= count

        wait_until(converged, 600, f"{count} deployments running", interval=0.25)
        figures["converged_s"] = time.time() - start
        time.sleep(2)  # a duplicate would be made after convergence, if at all: look a little later
        services = operator.list("rayservices", namespace)
    finally:
        operator.close()
        plane.stop()
    names = Counter(rs["metadata"]["name"] for rs in services)
    owners = Counter(rayservice.owner_uid(rs) for rs in services)
    lost = sorted(set(uids) - set(names))
    duplicated = len(services) - len(set(names) & set(uids)) + sum(n - 1 for n in owners.values() if n > 1)
    owned = {rs["metadata"]["name"]: rayservice.owner_uid(rs) for rs in services} == uids
    figures.update(rayservices=len(services), lost=len(lost), duplicated=duplicated)
    return figures, [
        Check(
            "the operator killed mid-rollout",
            0 < figures["at_kill"] < count,
            f"{figures['at_kill']} of {count} RayServices at the kill",
        ),
        Check(
            "the rollout converges, no RayService lost or duplicated",
            len(uids) == count and not lost and not duplicated and owned,
            f"{len(services)} RayServices for {len(uids)} deployments, {len(lost)} lost, {duplicated} "
            f"duplicated, {'each' if owned else 'NOT each'} owned by its deployment",
        ),
    ]


# --- the report ---------------------------------------------------------------------------------------------


def _ms(values: list[float], q: int) -> str:
    from serving_bench import percentile

    if not values:
        return "-"
    return f"{values[0] if len(values) == 1 else percentile(values, q):.0f}"


def rows(phase: str, answers: list[Answer]) -> list[list[str]]:
    """One row per kind and outcome: count, reason codes, p50 and p99 in ms; then all answers."""
    groups: dict[tuple[Kind, Outcome], list[Answer]] = {}
    for answer in answers:
        groups.setdefault((answer.kind, answer.outcome), []).append(answer)
    table = []
    for (kind, outcome), group in sorted(
        groups.items(), key=lambda item: (list(Kind).index(item[0][0]), item[0][1])
    ):
        codes = ", ".join(f"{code} {n}" for code, n in Counter(a.code for a in group).most_common(3))
        times = [a.ms for a in group]
        table.append([phase, kind, outcome, str(len(group)), codes, _ms(times, 50), _ms(times, 99)])
    if answers:
        spent = max(a.done for a in answers) - min(a.sent for a in answers)
        times = [a.ms for a in answers]
        rate = f"{len(answers) / spent:.1f} answers/s"
        table.append([phase, "all", "all", str(len(answers)), rate, _ms(times, 50), _ms(times, 99)])
    return table


def timeline_facts(
    answers: list[Answer], timeline: Timeline, records: dict[str, Any]
) -> list[tuple[str, str]]:
    """The faults, what the clients saw and what the guard decided (its log), in seconds from the start of
    the run. A client's answer may wait in Serve's queue behind generations; the log shows when the guard
    itself saw the change."""

    def t(at: float | None) -> str:
        return "-" if at is None else f"t+{at - timeline.start:.2f} s"

    def first_logged(after: float, verdict: str | None = None, new_process: bool = False) -> float | None:
        earlier = {r.segment for r in records.values() if r.time < after}
        return min(
            (
                r.time
                for r in records.values()
                if r.time >= after
                and (verdict is None or r.verdict == verdict)
                and not (new_process and r.segment in earlier)
            ),
            default=None,
        )

    killed, restarted = timeline.at("OPA killed"), timeline.at("OPA restarted")
    replica = timeline.at("replica killed")
    events: list[tuple[str, float | None]] = [("OPA SIGKILLed", killed)]
    if killed is not None:
        first = _first(answers, killed, Outcome.FAIL_CLOSED)
        events.append(("first undecided (engine unavailable) in the log", first_logged(killed, "undecided")))
        events.append(("first 503 answered after the kill", first.done if first else None))
    events += [("OPA started again", restarted), ("OPA ready", timeline.ended("OPA restarted"))]
    if restarted is not None:
        first = _first(answers, restarted, Outcome.SERVED, by="sent")
        events.append(("first allowed in the log after the restart", first_logged(restarted, "allowed")))
        events.append(("first 200 to a request sent after the restart", first.done if first else None))
    events.append(("ingress replica killed", replica))
    events.append(("new ingress replica actor", timeline.at("replica replaced")))
    if replica is not None:
        first = _first(answers, replica, Outcome.SERVED, by="sent")
        events.append(
            ("first decision of the new replica in the log", first_logged(replica, new_process=True))
        )
        events.append(("first 200 to a request sent after the replica's kill", first.done if first else None))
    return [(f"faults: {name}", t(at)) for name, at in events]


def _save(path: Path, runs: list[tuple[str, Run]]) -> None:
    with path.open("w") as out:
        for phase, run in runs:
            out.write(
                json.dumps({"phase": phase, "start": run.timeline.start, "events": run.timeline.events})
            )
            out.write("\n")
            out.writelines(json.dumps({"phase": phase, **asdict(answer)}) + "\n" for answer in run.answers)


def _rollout_fact(figures: dict[str, Any]) -> str:
    return (
        f"{figures['deployments']} LlamaDeployments; SIGKILL at t+{figures['killed_s']:.1f} s with "
        f"{figures['at_kill']} RayServices; ready again at t+{figures['restarted_s']:.1f} s; all submitted "
        f"at t+{figures['submitted_s']:.1f} s ({figures['refused_creates']} creates refused while the "
        f"webhook was down, tried again); all Running at t+{figures['converged_s']:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load and the faults runs")
    parser.add_argument("--phases", default="load,faults,operator", help="any of load, faults, operator")
    parser.add_argument("--max-tokens", type=int, default=8, help="tokens generated per served request")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request (s)")
    parser.add_argument("--deployments", type=int, default=200, help="the operator phase's rollout")
    parser.add_argument("--markdown", action="store_true", help="print the results as Markdown")
    parser.add_argument("--answers", type=Path, help="write every answer and the fault timeline (JSON lines)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the state, logs and decision log here (default: a temporary dir)"
    )
    options = parser.parse_args(argv)
    phases = [p.strip() for p in options.phases.split(",") if p.strip()]
    if unknown := set(phases) - {"load", "faults", "operator"}:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    facts = [*machine(), ("load average before", load())]
    if {"load", "faults"} & set(phases):
        each = f"{options.seconds:.0f} s per run, max_tokens {options.max_tokens}"
        facts.append(("clients", f"{options.clients}, {each}, timeout {options.timeout:.0f} s"))
    table: list[list[str]] = []
    found: list[Check] = []
    with ExitStack() as cleanup:
        workdir = options.workdir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
        _dev_state(workdir / "state")
        if {"load", "faults"} & set(phases):
            with serving(workdir, options.max_tokens) as gateway:
                _warm_up(gateway.url, options.max_tokens)
                runs: list[tuple[str, Run]] = []
                if "load" in phases:
                    runs.append(("load", load_phase(gateway, options)))
                if "faults" in phases:
                    runs.append(("faults", faults_phase(gateway, options)))
                facts.append(("load average after the serving runs", load()))
                time.sleep(1)  # the replicas' log writers flush within milliseconds; leave them a second
                records = decision_records()
            if options.answers:
                _save(options.answers, runs)
            for phase, run in runs:
                table += rows(phase, run.answers)
                timeline = run.timeline if run.timeline.events else None
                found += [
                    Check(f"{phase}: {c.name}", c.met, c.detail)
                    for c in checks(run.answers, timeline, records)
                ]
                lag = f"p50 {_ms(run.loop_lag_ms, 50)} ms, p99 {_ms(run.loop_lag_ms, 99)} ms"
                facts.append((f"{phase}: the clients' event loop woke late by", lag))
                if timeline is not None:
                    facts += timeline_facts(run.answers, timeline, records)
        if "operator" in phases:
            try:
                figures, operator_checks = operator_phase(workdir, options.deployments)
            except Exception as exc:  # e.g. a control plane that would not start: the serving runs stand
                operator_checks = [Check("the phase ran", False, f"{type(exc).__name__}: {exc}")]
            else:
                facts.append(("operator", _rollout_fact(figures)))
            facts.append(("load average after the rollout", load()))
            found += [Check(f"operator: {c.name}", c.met, c.detail) for c in operator_checks]

    header = ["phase", "kind", "outcome", "requests", "codes", "p50 ms", "p99 ms"]
    show(
        facts,
        header,
        table,
        [f"{c.name}: {'met' if c.met else 'VIOLATED'} ({c.detail})" for c in found],
        title="gateway under load and faults",
        markdown=options.markdown,
    )
    return 0 if all(c.met for c in found) else 1


if __name__ == "__main__":
    sys.exit(main())
