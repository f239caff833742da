"""The outside world's expected failures, each as a SovereignError whose one line names the cause and the fix.

Commands reach the Kubernetes client from deep inside the code they share with the operator, the fleet and
the evidence pack, so its exceptions surface anywhere; the CLI's entry point maps them here, once for every
command, instead of each command catching them (and a command that forgets one printing a traceback).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sovereign.devenv.state import controlplane_dir
from sovereign.errors import BadInput, NotRunning, SovereignError

START_OPERATOR = "sovereign operator run"
_WEBHOOK_CALL = re.compile(r'failed calling webhook "([^"]+)"')
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^)\"']+)")


def webhook_unreachable(text: str) -> str | None:
    """When the API server's answer says it could not call an admission webhook, the line saying so."""
    if not (found := _WEBHOOK_CALL.search(text)):
        return None
    return (
        f"the API server could not call the admission webhook {found[1]}, so it refuses every sovereign "
        f"object (fail closed): start the operator, which serves it: {START_OPERATOR}"
    )


def _kubeconfig_fix() -> str:
    dev = controlplane_dir("dev") / "kubeconfig"
    if dev.is_file():
        return f"export KUBECONFIG={dev} (the dev control plane's)"
    return "start a local control plane with `sovereign dev up` and export the KUBECONFIG it prints"


def _no_kubeconfig(detail: str) -> BadInput:
    named = os.environ.get("KUBECONFIG", "")
    missing = [p for p in named.split(os.pathsep) if p and not Path(p).is_file()]
    if missing:
        cause = f"KUBECONFIG names no file: {', '.join(missing)}"
    elif not named and not (Path.home() / ".kube" / "config").is_file():
        cause = "KUBECONFIG is not set and ~/.kube/config does not exist"
    else:
        cause = detail.rstrip(".")
    return BadInput(f"no usable kubeconfig ({cause}): give --kubeconfig FILE, or {_kubeconfig_fix()}")


def _unreachable(url: str, reason: object) -> NotRunning:
    # urllib3 names the connection object first; the operating system's words are what a reader needs.
    found = _ERRNO.search(str(reason))
    cause = found[1].strip() if found else type(reason).__name__
    return NotRunning(
        f"cannot reach {url} ({cause}): is the API server running? `sovereign dev status` shows the local "
        f"one, `sovereign dev up` starts it; otherwise fix the kubeconfig's server"
    )


def explain(exc: BaseException) -> SovereignError | None:
    """`exc` as the expected failure it is, or None for a bug (whose traceback is worth reading)."""
    # Imported only on a failure: most commands never load the Kubernetes client.
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import MaxRetryError

    from operators.sovereign_operator.kube import api_error

    if isinstance(exc, ConfigException):
        return _no_kubeconfig(str(exc))
    if isinstance(exc, MaxRetryError):
        pool = exc.pool
        url = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else str(exc.url)
        return _unreachable(url, exc.reason)
    if isinstance(exc, ApiException):
        said = api_error(exc)
        if webhook := webhook_unreachable(said):
            return NotRunning(webhook)
        if exc.status in (401, 403):
            return BadInput(
                f"the API server refused the kubeconfig's user ({said}): use a kubeconfig whose user may do "
                "this (the dev control plane's is an administrator)"
            )
        return SovereignError(f"the API server refused: {said}")
    if isinstance(exc, PermissionError) and exc.filename is not None:
        return BadInput(f"{exc.filename}: {exc.strerror}: give a path you may use, or fix its permissions")
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError) and exc.filename:
        return BadInput(f"{exc.filename}: {exc.strerror}: check the path")
    return None
