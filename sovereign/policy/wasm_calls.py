"""Guest calls into the policy's Wasm module at the cost of the call itself.

Every OPA Wasm ABI export opa-py-wasm calls (opa_eval, opa_malloc, opa_heap_ptr_get/set, opa_json_dump, ...)
takes and returns only i32. wasmtime-py's generic `Func.__call__` rebuilds the function's type from the
engine and type-checks each argument against it on every call: ~0.1 ms of Python per call on this machine
class, five calls per evaluation, so two thirds of an in-process decision (benchmarks/RESULTS.md). No
option of either library caches it, so this module does, by hand: for each instance and export, the arity
is read once and the call goes straight to wasmtime's C API (`wasmtime_func_call`) with i32 values, through
wasmtime-py's own trap handling (`enter_wasm`), so traps, timeouts (epoch interrupts) and a host built-in's
exception surface exactly as before.

It replaces opa-py-wasm's one internal call hook (`OpaAbi._call`) and the two exports it calls around it;
opa-py-wasm is pinned in pyproject.toml for that reason, and `install()` leaves the library's own path in
place (slower, still correct) if that hook is not there.

It also evaluates in one guest call (`_evaluate_in_one_call`), which opa-py-wasm does not: the library
resets the heap, allocates the input with opa_malloc and reads the heap pointer before opa_eval, and resets
the heap again after it, five guest calls per decision. ABI 1.2's opa_eval starts its heap at the pointer
it is given, so the input is written past the data at a fixed address and the heap starts after it, each
evaluation overwriting the last as OPA's own Go SDK does. Around that call it writes the input and reads
the result straight in the instance's linear memory (`_LinearMemory`): the library's reads and writes go
through four wrapper layers and a chunked scan for the result's NUL, a fifth of a decision after a pause.
"""

from __future__ import annotations

import ctypes
import json
import logging
import queue
from ctypes import byref
from typing import Any

from opapywasm import abi, evaluator
from opapywasm.errors import OpaEvaluationError, OpaMemoryError
from opapywasm.types import JSONInput, JSONValue
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime._func import enter_wasm

_I32 = ffi.WASMTIME_I32.value
_log = logging.getLogger(__name__)
# The C library's memchr finds the result's NUL in one bounded call; wasmtime-py exposes the memory only as
# Python objects and opa-py-wasm scans it in 4 KiB reads.
_memchr = ctypes.CDLL(None).memchr
_memchr.restype = ctypes.c_void_p
_memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)


class _LinearMemory:
    """One instance's linear memory, read and written in place. Its base address and size are read again
    for every access: a guest call may grow the memory, which can move it."""

    __slots__ = ("_context", "_memory")

    def __init__(self, abi: Any) -> None:
        runtime = abi._rt
        self._context, self._memory = runtime.store._context(), byref(runtime.memory._memory)

    def size(self) -> int:
        return int(ffi.wasmtime_memory_data_size(self._context, self._memory))

    def _base(self) -> int:
        return ctypes.cast(ffi.wasmtime_memory_data(self._context, self._memory), ctypes.c_void_p).value or 0

    def write(self, addr: int, raw: bytes) -> None:
        if addr < 0 or addr + len(raw) > (size := self.size()):
            raise OpaMemoryError(f"write of {len(raw)} bytes at {addr} is outside guest memory ({size})")
        ctypes.memmove(self._base() + addr, raw, len(raw))

    def read_json(self, addr: int, limit: int) -> JSONValue:
        """The NUL-terminated JSON at addr, parsed; the library's errors for a result outside the memory,
        past its size limit, or not JSON."""
        size = self.size()
        if not 0 <= addr < size:
            raise OpaMemoryError(f"read_cstring: start address {addr} outside guest memory size {size}")
        start = self._base() + addr
        end = _memchr(start, 0, min(size - addr, limit + 1))
        if end is None:
            raise OpaMemoryError(f"result is over {limit} bytes (or has no NUL terminator): past the limit")
        try:
            return json.loads(ctypes.string_at(start, end - start))  # type: ignore[no-any-return]
        except ValueError as exc:
            raise OpaMemoryError(f"OPA emitted invalid JSON for result: {exc}") from exc


class _I32Export:
    """One export of one instance, called with i32 arguments; returns its i32 result or None."""

    __slots__ = ("_func", "_params", "_results", "_store")

    def __init__(self, store: Any, func: Any) -> None:
        kind = func.type(store)
        if any(str(t) != "i32" for t in [*kind.params, *kind.results]):
            raise TypeError(f"not an i32-only export: {kind.params} -> {kind.results}")
        self._store, self._func = store, func
        self._params, self._results = len(kind.params), len(kind.results)

    def __call__(self, *args: int) -> int | None:
        if len(args) != self._params:
            raise WasmtimeError(f"expected {self._params} arguments, given {len(args)}")
        # Fresh arrays per call: a host built-in may call back into the guest while this call runs.
        params = (ffi.wasmtime_val_t * max(self._params, 1))()
        for slot, value in zip(params, args, strict=False):
            slot.kind = _I32
            slot.of.i32 = value
        results = (ffi.wasmtime_val_t * max(self._results, 1))()
        with enter_wasm(self._store) as trap:
            context, func = self._store._context(), byref(self._func._func)
            error = ffi.wasmtime_func_call(context, func, params, self._params, results, self._results, trap)
            if error:
                raise WasmtimeError._from_ptr(error)
        return int(results[0].of.i32) if self._results else None


def _call(self: Any, name: str, *args: int) -> int:
    exports = self.__dict__.setdefault("_sovereign_exports", {})
    export = exports.get(name)
    if export is None:
        export = exports[name] = _I32Export(self._rt.store, self._rt.get_func(name))
    return export(*args)  # type: ignore[no-any-return]


_library_evaluate = evaluator.Evaluator.evaluate


def _evaluate_in_one_call(self: evaluator.Evaluator, input_value: JSONInput, entrypoint_id: int) -> JSONValue:
    """`Evaluator.evaluate` with opa_eval as the only guest call; the library's own path when the input
    does not fit in the memory the instance has (opa_malloc grows it there)."""
    raw = self._codec.encode_input(input_value, limit=self._max_input_bytes, validate=self._validate_input)
    memory = self.__dict__.get("_sovereign_memory")
    if memory is None:
        memory = self.__dict__["_sovereign_memory"] = _LinearMemory(self._abi)
    input_addr = self._data.data_heap_ptr
    heap_ptr = input_addr + len(raw)
    if heap_ptr >= memory.size():
        return _library_evaluate(self, input_value, entrypoint_id)  # type: ignore[no-any-return]
    # From here a failure leaves the guest's state unknown: marking the entry has the pool discard the
    # instance instead of reusing it, as on the library's path.
    if self._on_enter_wasm is not None:
        self._on_enter_wasm()
    try:
        self._arm_deadline()
        memory.write(input_addr, raw)
        result_addr = self._abi.opa_eval(entrypoint_id, self._data.data_addr, input_addr, len(raw), heap_ptr)
        result = memory.read_json(result_addr, self._max_result_bytes)
        self._disarm_deadline()
    except Exception as exc:
        # The library's typed errors, so a failure reads the same on either path (a timeout says so).
        typed = evaluator._find_typed_in_chain(exc)
        if typed is not None:
            raise typed from exc
        if evaluator._is_epoch_interrupt(exc):
            raise OpaEvaluationError(
                "evaluation exceeded its time limit (eval_timeout_seconds) and was interrupted"
            ) from exc
        raise OpaEvaluationError(f"evaluation failed: {exc}") from exc
    return result


def reuse_last_instance(policy: Any) -> None:
    """Hand out the instance returned last, not the one idle longest: opa-py-wasm's pool is a FIFO queue,
    so one caller at a time cycles through every instance (building each, data and all) and always meets
    the one whose memory is coldest in the CPU caches. Same slots, same bound and close sentinel; only the
    order changes."""
    pool = policy._pool
    idle: queue.Queue[Any] = queue.LifoQueue(maxsize=pool._idle.maxsize)
    while True:
        try:
            idle.put_nowait(pool._idle.get_nowait())
        except queue.Empty:
            break
    pool._idle = idle


def install() -> bool:
    """Route opa-py-wasm's guest calls through `_I32Export` and its evaluations through
    `_evaluate_in_one_call`; False (and the library's path kept) if its hooks are not the ones this was
    written against."""
    if getattr(abi.OpaAbi, "_call", None) is _call:
        return True
    hooks = ("_call", "opa_heap_ptr_set", "opa_free", "opa_heap_ptr_get")
    needed = ("_find_typed_in_chain", "_is_epoch_interrupt")
    if not all(callable(getattr(abi.OpaAbi, hook, None)) for hook in hooks) or not all(
        callable(getattr(evaluator, name, None)) for name in needed
    ):
        _log.warning("opa-py-wasm has no OpaAbi._call hook: in-process decisions take the generic slow path")
        return False
    abi.OpaAbi._call = _call
    # These two call the export without going through _call.
    abi.OpaAbi.opa_heap_ptr_set = lambda self, addr: self._call("opa_heap_ptr_set", addr)
    abi.OpaAbi.opa_free = lambda self, addr: self._call("opa_free", addr)
    evaluator.Evaluator.evaluate = _evaluate_in_one_call
    return True
