"""Child processes that cannot outlive their parent.

Each child runs in its own process group (so a stop reaches everything it forked) and asks the kernel
for SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG): a parent killed with SIGKILL
leaves no orphans. Python's subprocess has no option for the latter, hence the small ctypes call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sovereign.errors import SovereignError

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        os.setpgrp()
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _below_ephemeral() -> range:
    """The ports under the kernel's ephemeral range (32768 unless configured otherwise), from 20000: Ray
    gives its workers 10002-19999."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(20000, max(low, 20001))


def free_port() -> int:
    """A loopback port free now, chosen under the ephemeral range: a port the kernel hands out (bind to 0)
    is also what it gives the next outgoing connection, and a bench's thousands of API-server connections
    took one between choosing it and a server binding it (EADDRINUSE)."""
    candidates = _below_ephemeral()
    for _ in range(100):
        port = random.choice(candidates)
        if not port_in_use(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class ManagedProcess:
    """One component: started with its log in a file, stopped with its whole process group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                preexec_fn=_die_with_parent(os.getpid()),
            )

    def exited(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `probe` until it holds; fail with the component's last log lines otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exited()
            if code is not None:
                raise SovereignError(
                    f"{self.name} exited with code {code} while starting; last log lines:\n{self.log_tail()}"
                )
            try:
                if probe():
                    return
            except Exception:  # not answering yet is the normal state while it starts
                pass
            time.sleep(0.1)
        raise SovereignError(
            f"{self.name} did not become ready ({what}) within {timeout:.0f} s; "
            f"see {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("  " + line for line in text[-lines:])

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a node failure or an OOM kill."""
        if not self.popen or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # the group is gone: it exited meanwhile
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=timeout)

    def stop(self, grace: float = 10.0) -> None:
        if not self.popen or self.popen.poll() is not None:
            return
        pgid = self.popen.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.popen.wait(timeout=grace)
        except ProcessLookupError:
            pass
