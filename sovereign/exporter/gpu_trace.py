"""Replays a recorded NVML trace (one GPU, a sample every ~200 ms) at the GPU seam, in real time.

The trace is what `NvmlReader` would have read on the recording machine, in NVML's raw units; replay
converts them exactly as the real reader does. The trace's clock starts at the first read (the first
scrape), so a slow start-up cannot skip part of it; after the last sample the last one holds (a GPU does
not vanish when the trace ends).
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sovereign.errors import BadInput
from sovereign.exporter.gpus import GpuReading

# A real H100 80GB HBM3 NVML trace (idle, bf16 matmuls, after), read every 200 ms: what the demo and the
# tests replay where there is no GPU.
H100_TRACE = Path(__file__).resolve().parent / "traces" / "nvml-h100-trace.json"

_MIB = 1024 * 1024


class _Device(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    uuid: str


class _Sample(BaseModel):
    model_config = ConfigDict(extra="ignore")
    t: float
    gpu_util_pct: float
    fb_used_bytes: int
    fb_free_bytes: int
    power_mw: int
    energy_mj: int
    temp_c: float
    sm_clock_mhz: float


class _Trace(BaseModel):
    model_config = ConfigDict(extra="ignore")
    device: _Device
    trace: list[_Sample]


def load_trace(path: Path) -> _Trace:
    try:
        trace = _Trace.model_validate(json.loads(path.read_text()))
    except OSError as exc:
        raise BadInput(
            f"--gpu-trace {path}: cannot read it ({exc.strerror}): give an NVML trace JSON file"
        ) from exc
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        raise BadInput(
            f"--gpu-trace {path}: not an NVML trace ({' '.join(first)}): expected "
            '{"device": {"name", "uuid"}, "trace": [{"t", "gpu_util_pct", ...}]}'
        ) from exc
    if not trace.trace:
        raise BadInput(f"--gpu-trace {path}: field 'trace' is empty: record at least one sample")
    return trace


class TraceReplayReader:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._trace = load_trace(path)
        self._offsets = [s.t - self._trace.trace[0].t for s in self._trace.trace]
        self._clock = clock
        self._start: float | None = None

    def read(self) -> list[GpuReading]:
        now = self._clock()
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        sample = self._trace.trace[max(0, bisect.bisect_right(self._offsets, elapsed) - 1)]
        return [
            GpuReading(
                index=0,
                uuid=self._trace.device.uuid,
                device="nvidia0",
                model_name=self._trace.device.name,
                util_pct=sample.gpu_util_pct,
                fb_used_mib=sample.fb_used_bytes / _MIB,
                fb_free_mib=sample.fb_free_bytes / _MIB,
                power_w=sample.power_mw / 1000,
                energy_mj=sample.energy_mj,
                temp_c=sample.temp_c,
                sm_clock_mhz=sample.sm_clock_mhz,
            )
        ]
