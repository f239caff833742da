"""Where the REST engine may send its token and whose answers it may believe.

Plain HTTP only to a loopback address, which no other machine can listen on or watch; anything else over
HTTPS whose certificate chains to the one CA configured for it ($SOVEREIGN_OPA_CA), never the system's
CAs, so a server holding any other certificate is refused before the token is sent. What loopback cannot
rule out: a process on the same host that takes the port while OPA is down. There, as everywhere, the
revision pin refuses unsigned or other policy; only a server that also copies the revision string would
be believed, so a host that shares its loopback with untrusted processes should use HTTPS too.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sovereign.errors import BadInput

OPA_URL_ENV = "SOVEREIGN_OPA_URL"
OPA_CA_ENV = "SOVEREIGN_OPA_CA"


@dataclass(frozen=True)
class OpaEndpoint:
    host: str
    port: int
    ca: Path | None  # the pinned CA for HTTPS; None for plain HTTP on loopback


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def opa_endpoint(url: str, ca: Path | None = None) -> OpaEndpoint:
    """The server at `url`, checked: BadInput naming the setting and the fix when it may not be used.
    `ca` defaults to $SOVEREIGN_OPA_CA, read only for an https URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise BadInput(f"{OPA_URL_ENV}={url!r}: expected http(s)://HOST:PORT, e.g. http://127.0.0.1:8181")
    if parts.scheme == "http":
        if not _is_loopback(parts.hostname):
            raise BadInput(
                f"{OPA_URL_ENV}={url!r}: plain http is allowed only to a loopback address (127.0.0.1, "
                f"localhost), where nothing else on the network can read the token or answer instead of "
                f"OPA; use https://{parts.hostname}:{parts.port} with {OPA_CA_ENV} set to the CA certificate "
                "that issued the server's"
            )
        return OpaEndpoint(parts.hostname, parts.port, None)
    if ca is None and (configured := os.environ.get(OPA_CA_ENV)):
        ca = Path(configured)
    if ca is None:
        raise BadInput(
            f"{OPA_URL_ENV}={url!r} is https: set {OPA_CA_ENV} to the PEM certificate of the CA that issued "
            "the OPA server's certificate (only that CA is trusted for it)"
        )
    if not ca.is_file():
        raise BadInput(f"{OPA_CA_ENV}={str(ca)!r}: no such file; point it at the PEM CA certificate")
    return OpaEndpoint(parts.hostname, parts.port, ca)
