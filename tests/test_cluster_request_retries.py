"""ClusterRequests that cannot be decided or written now are retried with backoff, and say why they wait:
the desk (operators/sovereign_operator/cluster_requests.py) on a stand-in API server and engine, with the
clock in the test's hand. test_cluster_request.py runs the same retries against the real API server."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import yaml
from judgements import decision
from kubernetes.client.exceptions import ApiException

from operators import manifests
from operators.sovereign_operator import cluster_requests
from operators.sovereign_operator.cluster_requests import RequestDesk
from sovereign import vocabulary as k8s
from sovereign.policy.engine import ENGINE_UNAVAILABLE, fail_closed
from sovereign.policy.judgement import Judge

REQUEST = manifests.EXAMPLES_DIR / "clusterrequests" / "clusterrequest-approved.yaml"


class Engine:
    """Unreachable until `up`; then it allows everything. Counts what it was asked."""

    name = "stand-in"

    def __init__(self) -> None:
        self.up = False
        self.asked = 0

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        return self.decide_many([inp])[0]

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.asked += len(inputs)
        if not self.up:
            return [fail_closed(ENGINE_UNAVAILABLE, "connection refused", self.name) for _ in inputs]
        return [decision(True) for _ in inputs]


class ApiServer:
    """One ClusterRequest; its status writes refused with 403 while `forbidden`."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.forbidden = False
        self.status_writes = 0
        self.events: list[tuple[str, str]] = []
        self.clusters: list[dict[str, Any]] = []

    def get_request(self, namespace: str, name: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.request))

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.forbidden:
            body = {"message": f'clusterrequests.sovereign.dev "{name}" is forbidden', "code": 403}
            raise _forbidden(body)
        self.status_writes += 1
        self.request["status"] = {**(self.request.get("status") or {}), **status}

    def event(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason))

    def create_cluster(self, body: dict[str, Any]) -> None:
        self.clusters.append(body)

    def list_all(self, plural: str) -> list[dict[str, Any]]:
        return []


def _forbidden(body: dict[str, Any]) -> ApiException:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps(body)
    return exc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(cluster_requests.time, "monotonic", clock)
    return clock


def _desk() -> tuple[RequestDesk, ApiServer, Engine]:
    request = yaml.safe_load(REQUEST.read_text())
    request["metadata"].update(uid="uid-1", generation=1)
    api, engine = ApiServer(json.loads(json.dumps(request, default=str))), Engine()
    return RequestDesk(api, Judge(engine), retry_s=4.0, first_retry_s=1.0), api, engine  # type: ignore[arg-type]


def _decided(api: ApiServer) -> dict[str, Any]:
    return next(c for c in api.request["status"]["conditions"] if c["type"] == k8s.CONDITION_DECIDED)


def test_a_request_no_engine_can_decide_says_why_and_is_decided_once_one_can(clock: Clock) -> None:
    desk, api, engine = _desk()
    desk.offer(api.request)
    waiting = _decided(api)
    assert api.request["status"]["phase"] == k8s.PHASE_PENDING
    assert (waiting["status"], waiting["reason"]) == ("Unknown", k8s.REASON_ENGINE_UNAVAILABLE)
    assert waiting["message"].endswith("; retrying in 1 s")
    assert api.events == [("Warning", k8s.REASON_ENGINE_UNAVAILABLE)]

    desk.offer(api.get_request("", ""))  # its own status write, seen on the watch: left to the retry
    assert engine.asked == 2  # two models, judged once
    clock.now += 1
    desk.retry_due()  # still down: the wait doubles, said in the status; no second Event
    assert _decided(api)["message"].endswith("; retrying in 2 s")
    assert api.events == [("Warning", k8s.REASON_ENGINE_UNAVAILABLE)]

    engine.up = True
    clock.now += 1.5
    desk.retry_due()
    assert api.request["status"]["phase"] == k8s.PHASE_PENDING  # not due yet
    clock.now += 0.5
    desk.retry_due()
    assert api.request["status"]["phase"] == k8s.PHASE_APPROVED
    assert [c["metadata"]["name"] for c in api.clusters] == ["usdef-lattice-2"]
    assert [entry["phase"] for entry in api.request["status"]["history"]] == ["Pending", "Approved"]
    clock.now += 100
    asked = engine.asked
    desk.retry_due()
    desk.offer(api.request)  # settled: nothing left to do
    assert engine.asked == asked


def test_a_status_the_operator_may_not_write_is_retried_with_backoff_judged_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    desk, api, engine = _desk()
    engine.up, api.forbidden = True, True
    with caplog.at_level(logging.WARNING, logger="operators"):
        desk.offer(api.request)
        for _ in range(4):
            clock.now += 10
            desk.retry_due()
    assert "status" not in api.request
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [w.rsplit("retrying in ", 1)[1] for w in waits] == ["1 s", "2 s", "4 s", "4 s", "4 s"]
    assert "the API server refused: clusterrequests.sovereign.dev" in waits[0]
    assert "is forbidden (onboard the namespace: label it sovereign.dev/managed=true" in waits[0]
    assert engine.asked == 2  # the decision is kept until written, never made again

    api.forbidden = False  # e.g. the namespace onboarded: the next retry writes the decision
    clock.now += 10
    desk.retry_due()
    assert api.request["status"]["phase"] == k8s.PHASE_APPROVED and engine.asked == 2
    assert ("Normal", "ClusterRequestApproved") in api.events


def test_a_withdrawn_request_is_no_longer_retried(clock: Clock) -> None:
    desk, api, engine = _desk()
    desk.offer(api.request)
    desk.withdraw(api.request)
    clock.now += 10
    desk.retry_due()
    assert engine.asked == 2
