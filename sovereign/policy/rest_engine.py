"""The OPA server over REST (opa-python-client), asked for provenance so each decision names its bundle.

The server verifies the signed bundle itself (`opa run --verification-key`, see bundle.opa_server_args);
a server that reports no bundle revision is serving unsigned policy, and its answers are refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opa_client import OpaClient

from sovereign.errors import BadInput
from sovereign.policy.engine import (
    BUNDLE_UNVERIFIED,
    ENGINE_UNAVAILABLE,
    Failure,
    fail_closed,
    finish,
    finish_batch,
)

NAME = "opa-rest"


class RestEngine:
    name = NAME

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
            raise BadInput(
                f"SOVEREIGN_OPA_URL={url!r}: expected http(s)://HOST:PORT, e.g. http://127.0.0.1:8181"
            )
        self.url = url
        # No retries: a server that does not answer within the timeout is unavailable, and that means deny.
        self._client = OpaClient(
            host=parts.hostname, port=parts.port, ssl=parts.scheme == "https", timeout=timeout_s, retries=0
        )

    def _query(
        self, inp: dict[str, Any], package: str, rule: str
    ) -> tuple[object, str | None, Failure | None]:
        try:
            body = self._client.query_rule(inp, package, rule, query_params={"provenance": "true"})
            bundles = body.get("provenance", {}).get("bundles") or {}
            revisions = [str(b["revision"]) for b in bundles.values() if b.get("revision")]
        except Exception as exc:  # fail closed: refused, timed out, HTTP error or garbage all mean deny
            return (
                None,
                None,
                (ENGINE_UNAVAILABLE, f"OPA server {self.url} failed: {type(exc).__name__}: {exc}"),
            )
        if len(revisions) != 1:
            message = f"OPA server {self.url} serves no single signed bundle (bundles: {sorted(bundles)})"
            return None, None, (BUNDLE_UNVERIFIED, message)
        if "result" not in body:
            return None, revisions[0], (ENGINE_UNAVAILABLE, f"the policy left {package}.{rule} undefined")
        return body["result"], revisions[0], None

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        result, revision, failure = self._query(inp, "sovereign.decision", "result")
        if failure:
            return fail_closed(*failure, NAME, revision)
        return finish(result, NAME, str(revision))

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not inputs:
            return []
        results, revision, failure = self._query({"items": inputs}, "sovereign.batch", "results")
        if failure:
            return [fail_closed(*failure, NAME, revision) for _ in inputs]
        return finish_batch(results, len(inputs), NAME, str(revision))

    def close(self) -> None:
        self._client.close_connection()
