"""Every OPA server the project starts answers only requests bearing its token, checked by OPA itself
with the authz policy signed into the bundle (issue 14, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from sovereign.errors import BadInput
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.opa_token import TOKEN_ENV, client_token, server_token, token_path
from sovereign.policy.rest_engine import RestEngine

INPUT = {"model": "llama-3.1-8b-instruct"}


def codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


def test_opa_refuses_requests_without_the_token_and_the_engine_says_so(opa_server: Any) -> None:
    data = f"{opa_server.url}/v1/data/sovereign/decision/result"
    assert requests.post(data, json={"input": INPUT}, timeout=5).status_code == 401
    wrong = {"Authorization": f"Bearer {'0' * 64}"}
    assert requests.post(data, json={"input": INPUT}, headers=wrong, timeout=5).status_code == 401
    assert requests.get(f"{opa_server.url}/v1/policies", headers=wrong, timeout=5).status_code == 401
    # Probes need no token: health tells nothing about the policy or its data.
    assert requests.get(f"{opa_server.url}/health?bundles=true", timeout=5).status_code == 200

    refused = RestEngine(opa_server.url, token="0" * 64).decide(INPUT)
    assert codes(refused) == ["ENGINE_UNAVAILABLE"]
    assert "refused this process's token (401)" in refused["violations"][0]["message"]
    # The session's token, found in the state dir, is the one the server was started with.
    assert codes(RestEngine(opa_server.url).decide(INPUT)) != ["ENGINE_UNAVAILABLE"]
    right = {"Authorization": f"Bearer {client_token()}"}
    assert requests.post(data, json={"input": INPUT}, headers=right, timeout=5).status_code == 200


@pytest.mark.parametrize("token", ["", "too-short-to-guess-safely"])
def test_a_server_started_without_a_proper_token_answers_nobody(
    signed_bundle: SignedBundle, start_opa_server: Any, token: str
) -> None:
    # An empty token must not match an empty or absent bearer; a short one is not accepted either.
    url = start_opa_server(signed_bundle, env={TOKEN_ENV: token}).url
    data = f"{url}/v1/data/sovereign/decision/result"
    for bearer in (None, "", token, client_token()):
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        assert requests.post(data, json={"input": INPUT}, headers=headers, timeout=5).status_code == 401


def test_no_token_to_send_is_undecided_naming_the_setting(
    opa_server: Any, signed_bundle: SignedBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path))  # a state dir no OPA starter wrote to
    decision = RestEngine(opa_server.url, bundle=signed_bundle).decide(INPUT)
    assert codes(decision) == ["ENGINE_UNAVAILABLE"]
    assert TOKEN_ENV in decision["violations"][0]["message"] and not (tmp_path / "opa").exists()


def test_the_token_is_made_once_private_and_a_short_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert client_token() is None
    made = server_token()
    assert len(made) >= 32 and server_token() == made == client_token()
    assert token_path().stat().st_mode & 0o777 == 0o600 and token_path().parent.stat().st_mode & 0o077 == 0
    assert [p.name for p in token_path().parent.iterdir()] == ["token"]

    monkeypatch.setenv(TOKEN_ENV, "e" * 40)
    assert server_token() == client_token() == "e" * 40  # the configured one wins over the file
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(BadInput, match=f"{TOKEN_ENV}.*at least 32"):
        server_token()
