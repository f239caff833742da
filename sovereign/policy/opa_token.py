"""The bearer token every OPA server the project starts requires, and every REST engine sends.

OPA checks it itself (`--authentication=token --authorization=basic`) with the `system.authz` policy
that `sovereign bundle build` signs into every bundle (opa_authz.rego). That policy compares the request's
token with $SOVEREIGN_OPA_TOKEN in the server's own environment: the token stays out of the bundle, and no
unsigned file beside it can loosen the check.

Whoever starts an OPA server (`sovereign dev up`, the tests' and benchmarks' servers) takes the token from
$SOVEREIGN_OPA_TOKEN, else from the state dir, creating it there (0600) the first time; consumers only
read it from the same two places. In a cluster it is a Secret given to OPA and the operator.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from sovereign.errors import BadInput
from sovereign.state_dir import state_root

TOKEN_ENV = "SOVEREIGN_OPA_TOKEN"
MIN_LENGTH = 32  # what opa_authz.rego accepts: a short token would be guessable


def token_path() -> Path:
    return state_root() / "opa" / "token"


def client_token() -> str | None:
    """The token to send, or None when neither $SOVEREIGN_OPA_TOKEN nor the state dir's file holds one."""
    if token := os.environ.get(TOKEN_ENV):
        return token
    try:
        return token_path().read_text().strip() or None
    except OSError:
        return None


def server_token() -> str:
    """The token an OPA server started here requires: the configured one, else a new one in the state dir."""
    if token := client_token():
        if len(token) < MIN_LENGTH:
            raise BadInput(
                f"{TOKEN_ENV} (or {token_path()}) holds a {len(token)}-character token: OPA's authz policy "
                f"needs at least {MIN_LENGTH}; generate one, e.g. `openssl rand -hex 32`"
            )
        return token
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    # Written whole under a temporary name, then linked into place: a reader never sees half a token, and
    # of two starters at once the first link wins and the second uses it.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".token-") as draft:
        draft.write(token)
        draft.flush()
        try:
            os.link(draft.name, path)
        except FileExistsError:
            return server_token()
    return token


def opa_server_env() -> dict[str, str]:
    """What an `opa run` started with bundle.opa_server_args needs in its environment."""
    return {TOKEN_ENV: server_token()}
