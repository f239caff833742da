"""The OPA server over REST (opa-python-client), asked for provenance so each decision names its bundle.

The server verifies the signed bundle itself (`opa run --verification-key`, see bundle.opa_server_args),
but a server started without that flag serves whatever it is given, and an unsigned bundle can copy any
revision into its manifest. So this engine also verifies its own copy of the bundle against the trust
anchor (pinned_bundle.py) and believes only a server reporting exactly that bundle's revision: a server
on unsigned or other policy is refused (BUNDLE_UNVERIFIED), and so is every decision while the local
bundle does not verify. Every request bears the token the server requires (opa_token.py); a server that
refuses it, or no token to send, is ENGINE_UNAVAILABLE. The token goes only to loopback over plain HTTP,
or over HTTPS to a certificate of the pinned CA (opa_endpoint.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests
from opa_client import OpaClient

from sovereign.policy.bundle import BUNDLE_DIR_ENV, SignedBundle, bundle_dir, trust_anchor_path
from sovereign.policy.engine import (
    BUNDLE_UNVERIFIED,
    ENGINE_UNAVAILABLE,
    Failure,
    fail_closed,
    finish,
    finish_batch,
)
from sovereign.policy.opa_endpoint import opa_endpoint
from sovereign.policy.opa_token import TOKEN_ENV, client_token, token_path
from sovereign.policy.pinned_bundle import PinnedBundle

NAME = "opa-rest"
# OPA's interpreter spends about 1 ms per item of a batch on 2 busy cores; allow ten times that on top
# of the single-call timeout, so a large batch (the matrix: ~2,000 items) is not cut off as "down".
BATCH_ITEM_TIMEOUT_S = 0.01
# A rebuilt bundle reaches this process and its OPA server at different moments (OPA's --watch, a
# ConfigMap volume each pod sees in its own time). A served revision other than the pinned one is asked
# again for this long before the decision fails closed, so a rollout is not counted as a refused bundle
# (sovereign_policy_bundle_refused_total, a critical alert) at every consumer that judged meanwhile.
REVISION_SKEW_WAIT_S = 3.0
_SKEW_POLL_S = 0.1


class _PinnedClient(OpaClient):
    """An OpaClient whose session ignores the environment: requests lets $REQUESTS_CA_BUNDLE and
    $CURL_CA_BUNDLE replace a session's CA file (seen here: the system bundle then vouches for any
    server), a ~/.netrc replace its Authorization header, and $HTTPS_PROXY route the token elsewhere."""

    def _init_session(self) -> requests.Session:
        session = super()._init_session()
        session.trust_env = False
        return session


class RestEngine:
    name = NAME

    def __init__(
        self,
        url: str,
        timeout_s: float = 2.0,
        bundle: SignedBundle | None = None,
        token: str | None = None,
        ca: Path | None = None,
        skew_wait_s: float = REVISION_SKEW_WAIT_S,
    ) -> None:
        """`bundle`: the signed bundle the server must be serving (default: the one this process is
        configured with, $SOVEREIGN_POLICY_BUNDLE_DIR and $SOVEREIGN_POLICY_TRUST_ANCHOR); `token`: what
        the server requires (default: $SOVEREIGN_OPA_TOKEN, else the state dir's); `ca`: for an https
        URL, the only CA its certificate may chain to (default: $SOVEREIGN_OPA_CA); `skew_wait_s`: how long
        a server on another revision than the pinned one is given to catch up. BadInput when the URL may
        not be used."""
        endpoint = opa_endpoint(url, ca)
        self.url = url
        self.timeout_s = timeout_s
        self.skew_wait_s = skew_wait_s
        self._pinned = PinnedBundle(bundle or SignedBundle.at(bundle_dir(), "", trust_anchor_path()))
        self._token = token or client_token()

        def connect() -> OpaClient:
            # No retries: a server that does not answer within the timeout is unavailable: deny.
            return _PinnedClient(
                host=endpoint.host,
                port=endpoint.port,
                # A CA file: requests then verifies the certificate (and host name) against it alone.
                ssl=str(endpoint.ca) if endpoint.ca else False,
                token=self._token,
                timeout=timeout_s,
                retries=0,
            )

        self._client = connect()
        # Batches get a timeout scaled to their size; the client holds one timeout, so batches take turns.
        self._batch_client = connect()
        self._batch_lock = threading.Lock()

    def _query(
        self, inp: dict[str, Any], package: str, rule: str, client: OpaClient | None = None
    ) -> tuple[object, str | None, Failure | None]:
        deadline = time.monotonic() + self.skew_wait_s
        while True:
            result, revision, failure, skewed = self._ask(inp, package, rule, client)
            if not skewed or time.monotonic() >= deadline:
                return result, revision, failure
            time.sleep(_SKEW_POLL_S)

    def _ask(
        self, inp: dict[str, Any], package: str, rule: str, client: OpaClient | None
    ) -> tuple[object, str | None, Failure | None, bool]:
        """One question to the server; the last item says it served another revision than the pinned one."""
        pinned, refusal = self._pinned.revision()
        if pinned is None:
            return None, None, (BUNDLE_UNVERIFIED, refusal), False
        if self._token is None:
            message = (
                f"no token for the OPA server {self.url}: set {TOKEN_ENV} to the token it was started "
                f"with (`sovereign dev up` writes it to {token_path()})"
            )
            return None, None, (ENGINE_UNAVAILABLE, message), False
        try:
            body = (client or self._client).query_rule(
                inp, package, rule, query_params={"provenance": "true"}
            )
            bundles = body.get("provenance", {}).get("bundles") or {}
            revisions = [str(b["revision"]) for b in bundles.values() if b.get("revision")]
        except requests.HTTPError as exc:
            return None, None, (ENGINE_UNAVAILABLE, self._http_error(exc)), False
        except Exception as exc:  # fail closed: refused, timed out or garbage all mean deny
            failed = f"OPA server {self.url} failed: {type(exc).__name__}: {exc}"
            return None, None, (ENGINE_UNAVAILABLE, failed), False
        if len(revisions) != 1:
            message = f"OPA server {self.url} serves no single signed bundle (bundles: {sorted(bundles)})"
            return None, None, (BUNDLE_UNVERIFIED, message), False
        if revisions[0] != pinned:
            return None, None, (BUNDLE_UNVERIFIED, self._not_pinned(revisions[0], pinned)), True
        if "result" not in body:
            undefined = f"the policy left {package}.{rule} undefined"
            return None, revisions[0], (ENGINE_UNAVAILABLE, undefined), False
        return body["result"], revisions[0], None, False

    def _http_error(self, exc: requests.HTTPError) -> str:
        if exc.response is not None and exc.response.status_code == 401:
            return (
                f"OPA server {self.url} refused this process's token (401): it requires the token it was "
                f"started with; set {TOKEN_ENV} to that one"
            )
        return f"OPA server {self.url} failed: HTTPError: {exc}"

    def _not_pinned(self, served: str, pinned: str) -> str:
        bundle = self._pinned.bundle
        return (
            f"OPA server {self.url} serves policy revision {served!r}, not {pinned!r}, the revision of "
            f"{bundle.rego} verified here with the trust anchor {bundle.verification_key}: serve that "
            f"signed bundle with `opa run --verification-key` (it may still be loading a rebuild), or point "
            f"{BUNDLE_DIR_ENV} at the signed bundle the server serves"
        )

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        result, revision, failure = self._query(inp, "sovereign.decision", "result")
        if failure:
            return fail_closed(*failure, NAME, revision)
        return finish(result, NAME, str(revision))

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not inputs:
            return []
        if len(inputs) == 1:
            # The batch rule's result for an item is the decision for it (policies/sovereign/batch): one
            # input is asked as one decision, off the batch client's lock, so concurrent admission reviews
            # (a batch of one each) do not queue behind each other or behind a fleet batch.
            return [self.decide(inputs[0])]
        with self._batch_lock:
            self._batch_client.timeout = self.timeout_s + BATCH_ITEM_TIMEOUT_S * len(inputs)
            results, revision, failure = self._query(
                {"items": inputs}, "sovereign.batch", "results", self._batch_client
            )
        if failure:
            return [fail_closed(*failure, NAME, revision) for _ in inputs]
        return finish_batch(results, len(inputs), NAME, str(revision))

    def close(self) -> None:
        self._client.close_connection()
        self._batch_client.close_connection()
