"""The process's fatal-signal handlers, kept as they were across Ray's start and shutdown.

wasmtime (under the in-process policy engine) turns a Wasm trap into an error only while its own SIGILL /
SIGSEGV / SIGBUS / SIGFPE handlers are installed, and opa-py-wasm relies on one such trap to size every new
instance's memory. `ray.init` installs Python's faulthandler and Ray's own handlers over them, and
`ray.shutdown` leaves others behind, so a process that starts Ray (the local data plane's driver, tests,
benchmarks) would die on its next policy engine. Python's `signal` module sees only handlers written in
Python, so the C-level `sigaction` is saved and put back through libc: no library does this.
"""

from __future__ import annotations

import ctypes
import signal

FATAL = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)


class _Sigaction(ctypes.Structure):
    # glibc's struct sigaction on Linux (x86-64 and aarch64): handler, 1024-bit mask, flags, restorer.
    _fields_ = [
        ("sa_handler", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_int),
        ("sa_restorer", ctypes.c_void_p),
    ]


_libc = ctypes.CDLL(None, use_errno=True)

Handlers = dict[int, _Sigaction]


def current() -> Handlers:
    handlers: Handlers = {}
    for number in FATAL:
        action = _Sigaction()
        if _libc.sigaction(number, None, ctypes.byref(action)) != 0:
            raise OSError(ctypes.get_errno(), f"sigaction({number}) could not be read")
        handlers[number] = action
    return handlers


def restore(handlers: Handlers) -> None:
    for number, action in handlers.items():
        if _libc.sigaction(number, ctypes.byref(action), None) != 0:
            raise OSError(ctypes.get_errno(), f"sigaction({number}) could not be restored")
