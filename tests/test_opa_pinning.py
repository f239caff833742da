"""The REST engine believes an OPA server only when it serves the bundle verified here (issue 14, item 3).

A rogue `opa run --server` (no --verification-key) on an unsigned allow-all bundle would let the guard
serve images to a Vision model in the EU region; every consumer must refuse it as BUNDLE_UNVERIFIED. A
rogue that also copies the real revision into its manifest cannot be told apart by its answers: over
HTTPS the pinned CA refuses it before anything is sent.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from test_decide_cli import EU_ALLOWED, decide

from serving.args import PolicyContext
from serving.guard import RequestGuard
from sovereign import toolchain
from sovereign.devenv.pki import CertPair, LocalCA
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.errors import BadInput
from sovereign.policy import subjects
from sovereign.policy.bundle import PolicySources, SignedBundle, build_bundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.engine import engine_from_env
from sovereign.policy.pinned_bundle import PinnedBundle
from sovereign.policy.rest_engine import RestEngine

VISION_11B = "llama-3.2-11b-vision-instruct"
# The EU cluster and a Vision model: the real policy denies it, the rogue allow-all bundle allows it.
EU_VISION = {**EU_ALLOWED, "model": VISION_11B}
IMAGE_REQUEST = {
    "model": VISION_11B,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ],
}
ALLOW_ALL = 'package sovereign.decision\n\nresult := {"allow": true, "violations": [], "obligations": []}\n'


def codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


@dataclass
class Rogue:
    url: str
    log: Path


@pytest.fixture
def rogue_server(tmp_path: Path) -> Iterator[Callable[..., Rogue]]:
    """rogue_server(revision, tls=None): a real `opa run --server` WITHOUT --verification-key or token,
    serving an unsigned allow-all bundle whose .manifest claims `revision`; over HTTPS with `tls` (its
    certificate and the CA that issued it)."""
    started: list[ManagedProcess] = []

    def start(revision: str, tls: tuple[CertPair, Path] | None = None) -> Rogue:
        folder = tmp_path / f"rogue-{len(started)}"
        (folder / "sovereign").mkdir(parents=True)
        (folder / "sovereign" / "decision.rego").write_text(ALLOW_ALL)
        (folder / ".manifest").write_text(json.dumps({"revision": revision}))
        port = free_port()
        argv = [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{port}"]
        argv += ["--disable-telemetry", "--log-level=info", "--bundle", str(folder)]
        if tls:
            argv += [f"--tls-cert-file={tls[0].cert}", f"--tls-private-key-file={tls[0].key}"]
        log = folder.with_suffix(".log")
        proc = ManagedProcess("opa-rogue", argv, log)
        proc.start()
        started.append(proc)
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        verify = str(tls[1]) if tls else True
        proc.wait_ready(
            lambda: requests.get(f"{url}/health", timeout=1, verify=verify).status_code == 200, 30, "/health"
        )
        # What the engine is up against: the server itself allows and claims the revision.
        answer = requests.post(
            f"{url}/v1/data/sovereign/decision/result?provenance=true",
            json={"input": EU_VISION},
            timeout=5,
            verify=verify,
        ).json()
        assert answer["result"]["allow"] is True
        assert [b["revision"] for b in answer["provenance"]["bundles"].values()] == [revision]
        return Rogue(url, log)

    yield start
    for proc in started:
        proc.stop()


@pytest.mark.slow
def test_an_unsigned_bundle_on_a_real_opa_server_is_refused_by_decide_and_the_guard(
    cli_state: Path,
    signed_bundle: SignedBundle,
    rogue_server: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = rogue_server("rogue-1").url
    monkeypatch.setenv("SOVEREIGN_OPA_URL", url)
    (tmp_path / "input.json").write_text(json.dumps(EU_VISION))
    code, decision, err = decide(monkeypatch, capsys, str(tmp_path / "input.json"))
    assert code == 2 and decision["allow"] is False and codes(decision) == ["BUNDLE_UNVERIFIED"]
    message = decision["violations"][0]["message"]
    assert "'rogue-1'" in message and repr(signed_bundle.revision) in message and url in err
    assert decision["policy_revision"] is None

    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    guard = RequestGuard(
        PolicyContext(cluster=cluster, end_use="commercial"), [VISION_11B], engine=RestEngine(url)
    )
    answer = guard.check(IMAGE_REQUEST, VISION_11B, "acme")
    assert not answer.allowed and answer.status == 503 and answer.codes == ["BUNDLE_UNVERIFIED"]


@pytest.mark.slow
def test_a_server_on_a_bundle_signed_with_the_same_key_but_another_revision_is_refused(
    signed_bundle: SignedBundle,
    tiny_policy: Callable[..., PolicySources],
    start_opa_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # Signed by the session's key and verified by OPA itself: only the revision tells it from ours.
    other = build_bundle(
        tiny_policy({}, decision_rego=ALLOW_ALL), tmp_path / "other", progress=lambda _: None
    )
    assert other.revision != signed_bundle.revision
    url = start_opa_server(other).url
    refused = RestEngine(url).decide(EU_VISION)
    assert refused["allow"] is False and codes(refused) == ["BUNDLE_UNVERIFIED"]
    assert "SOVEREIGN_POLICY_BUNDLE_DIR" in refused["violations"][0]["message"]
    assert [codes(d) for d in RestEngine(url).decide_many([EU_VISION] * 3)] == [["BUNDLE_UNVERIFIED"]] * 3
    # Pinned to that very bundle, the same server is believed.
    assert RestEngine(url, bundle=other).decide(EU_VISION)["allow"] is True


def test_a_local_bundle_that_does_not_verify_refuses_even_a_genuine_server(
    signed_bundle: SignedBundle, opa_server: Any, tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle.tar.gz"
    tampered.write_bytes(signed_bundle.rego.read_bytes()[:-40])
    pinned = SignedBundle.at(tmp_path, "", signed_bundle.verification_key)
    refused = RestEngine(opa_server.url, bundle=pinned).decide(EU_VISION)
    assert (
        codes(refused) == ["BUNDLE_UNVERIFIED"]
        and "refusing the policy bundle" in refused["violations"][0]["message"]
    )
    assert RestEngine(opa_server.url, bundle=signed_bundle).decide(EU_VISION)[
        "violations"
    ]  # denied by policy


def test_the_pin_follows_a_rebuilt_bundle(
    signed_bundle: SignedBundle, tiny_policy: Callable[..., PolicySources], tmp_path: Path
) -> None:
    folder = tmp_path / "installed"
    folder.mkdir()
    pin = PinnedBundle(SignedBundle.at(folder, "", signed_bundle.verification_key))
    revision, why = pin.revision()
    assert revision is None and "sovereign bundle build" in why
    (folder / "bundle.tar.gz").write_bytes(signed_bundle.rego.read_bytes())
    assert pin.revision() == (signed_bundle.revision, "")
    other = build_bundle(
        tiny_policy({}, decision_rego=ALLOW_ALL), tmp_path / "other", progress=lambda _: None
    )
    (folder / "bundle.tar.gz").write_bytes(other.rego.read_bytes())
    assert pin.revision() == (other.revision, "")


@pytest.mark.slow
def test_a_rollout_the_server_catches_up_with_is_not_a_refusal(
    signed_bundle: SignedBundle,
    tiny_policy: Callable[..., PolicySources],
    start_opa_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """A rebuilt bundle reaches this process at once and OPA's --watch a moment later: the engine asks
    again until the server serves the pinned revision, instead of refusing the bundle (which the refused
    counter and its critical alert would report at every rollout); a server that never catches up is
    still refused once the wait is over."""
    folder = tmp_path / "installed"
    folder.mkdir()
    shutil.copy(signed_bundle.rego, folder / "bundle.tar.gz")
    installed = SignedBundle.at(folder, "", signed_bundle.verification_key)
    server = start_opa_server(installed, watch=True)
    engine = RestEngine(server.url, bundle=installed)
    assert engine.decide(EU_VISION)["policy_revision"] == signed_bundle.revision
    other = build_bundle(
        tiny_policy({}, decision_rego=ALLOW_ALL), tmp_path / "other", progress=lambda _: None
    )
    shutil.copy(other.rego, folder / "next.tar.gz")
    os.replace(folder / "next.tar.gz", folder / "bundle.tar.gz")  # as a publish swaps it in
    decided = engine.decide(EU_VISION)
    assert decided["allow"] is True and decided["policy_revision"] == other.revision, decided
    stale = start_opa_server(signed_bundle)  # stays on the revision before the rollout
    started = time.monotonic()
    refused = RestEngine(stale.url, bundle=installed, skew_wait_s=0.5).decide(EU_VISION)
    assert codes(refused) == ["BUNDLE_UNVERIFIED"] and time.monotonic() - started >= 0.5


# --- a rogue that copies the revision: only the server's identity tells ---------------------------------


def _tls(folder: Path) -> tuple[CertPair, Path]:
    ca = LocalCA(folder)
    return ca.issue_server_cert("opa", ["127.0.0.1"]), ca.cert_path


@pytest.mark.slow
def test_over_https_only_a_server_of_the_pinned_ca_is_asked(
    signed_bundle: SignedBundle,
    start_opa_server: Callable[..., Any],
    rogue_server: Callable[..., Rogue],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, theirs = _tls(tmp_path / "our-ca"), _tls(tmp_path / "their-ca")
    genuine = start_opa_server(signed_bundle, tls=ours).url
    rogue = rogue_server(signed_bundle.revision, tls=theirs)  # the real revision, copied

    # What the revision pin alone cannot tell: over plain loopback http the copy is believed.
    copied = rogue_server(signed_bundle.revision).url
    assert RestEngine(copied).decide(EU_VISION)["allow"] is True

    # requests lets $REQUESTS_CA_BUNDLE replace a session's CA file: the pin must hold even so.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(theirs[1]))
    monkeypatch.setenv("SOVEREIGN_OPA_CA", str(ours[1]))
    decision = RestEngine(genuine).decide(EU_VISION)
    assert decision["engine"] == "opa-rest" and decision["policy_revision"] == signed_bundle.revision
    assert "EU_MULTIMODAL_LICENCE" in codes(decision)  # the real policy's answer

    asked = rogue.log.read_text().count("/v1/data")  # the fixture's own look at it
    refused = RestEngine(rogue.url).decide(EU_VISION)
    assert refused["allow"] is False and codes(refused) == ["ENGINE_UNAVAILABLE"]
    assert "CERTIFICATE_VERIFY_FAILED" in refused["violations"][0]["message"]
    assert rogue.log.read_text().count("/v1/data") == asked  # refused at the handshake: no token sent

    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    guard = RequestGuard(
        PolicyContext(cluster=cluster, end_use="commercial"), [VISION_11B], engine=RestEngine(rogue.url)
    )
    answer = guard.check(IMAGE_REQUEST, VISION_11B, "acme")
    assert not answer.allowed and answer.status == 503


@pytest.mark.parametrize(
    ("url", "ca", "names"),
    [
        (
            "http://10.0.0.5:8181",
            None,
            ["SOVEREIGN_OPA_URL", "loopback", "https://10.0.0.5:8181", "SOVEREIGN_OPA_CA"],
        ),
        ("http://opa.example:8181", None, ["SOVEREIGN_OPA_URL", "loopback"]),
        ("https://opa.example:8181", None, ["SOVEREIGN_OPA_CA", "PEM certificate"]),
        ("https://opa.example:8181", "/nonexistent/ca.crt", ["SOVEREIGN_OPA_CA", "no such file"]),
        ("localhost:8181", None, ["SOVEREIGN_OPA_URL", "http(s)://HOST:PORT"]),
    ],
)
def test_a_url_the_token_may_not_go_to_is_refused_naming_the_setting(
    url: str, ca: str | None, names: list[str], monkeypatch: pytest.MonkeyPatch, cli_state: Path
) -> None:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", url)
    if ca:
        monkeypatch.setenv("SOVEREIGN_OPA_CA", ca)
    with pytest.raises(BadInput) as refused:
        engine_from_env()
    assert all(name in str(refused.value) for name in names), refused.value


@pytest.mark.parametrize("url", ["http://127.0.0.1:8181", "http://127.3.2.1:8181", "http://localhost:8181"])
def test_plain_http_to_loopback_is_allowed(
    url: str, monkeypatch: pytest.MonkeyPatch, cli_state: Path
) -> None:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", url)
    assert engine_from_env().name == "opa-rest"
