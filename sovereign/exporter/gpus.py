"""The GPU seam: one reading per GPU, from NVML on a real node or from a recorded trace in tests.

Values are already in dcgm-exporter's units (%, MiB, W, mJ, °C, MHz), so the collector only labels them.
A field the GPU does not support is None and its metric is left out for that GPU, as DCGM does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

_MIB = 1024 * 1024
T = TypeVar("T")


class GpuSourceDown(Exception):
    """The GPUs cannot be read at all (no driver, no library): the exporter reports the source down."""


@dataclass(frozen=True)
class GpuReading:
    index: int
    uuid: str
    device: str  # the device node name, e.g. nvidia0
    model_name: str
    util_pct: float | None
    fb_used_mib: float | None
    fb_free_mib: float | None
    power_w: float | None
    energy_mj: float | None
    temp_c: float | None
    sm_clock_mhz: float | None


class GpuReader(Protocol):
    def read(self) -> list[GpuReading]:
        """One reading per GPU; raises GpuSourceDown when no GPU can be read."""
        ...


def _text(value: str | bytes) -> str:
    # nvidia-ml-py releases before 11.515 returned bytes; a GPU node may carry one of those.
    return value.decode() if isinstance(value, bytes) else value


class NvmlReader:
    """The real thing, through nvidia-ml-py. NVML is initialised on first use and again after a failure,
    so a driver that appears after the exporter started is picked up without a restart."""

    def __init__(self) -> None:
        self._initialised = False

    def read(self) -> list[GpuReading]:
        try:
            import pynvml
        except ImportError as exc:
            raise GpuSourceDown("python package nvidia-ml-py is not installed") from exc
        try:
            if not self._initialised:
                pynvml.nvmlInit()
                self._initialised = True
            return [self._read_one(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:
            self.close()
            raise GpuSourceDown(f"NVML: {exc}") from exc

    @staticmethod
    def _read_one(nvml: Any, index: int) -> GpuReading:  # Any: pynvml ships no type stubs
        handle = nvml.nvmlDeviceGetHandleByIndex(index)

        def optional(read: Callable[[], T]) -> T | None:
            try:
                return read()
            except nvml.NVMLError_NotSupported:
                return None

        memory = optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        power_mw = optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        minor = optional(lambda: nvml.nvmlDeviceGetMinorNumber(handle))
        return GpuReading(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            device=f"nvidia{minor if minor is not None else index}",
            model_name=_text(nvml.nvmlDeviceGetName(handle)),
            util_pct=optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            fb_used_mib=memory.used / _MIB if memory else None,
            fb_free_mib=memory.free / _MIB if memory else None,
            power_w=power_mw / 1000 if power_mw is not None else None,
            energy_mj=optional(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
            temp_c=optional(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            sm_clock_mhz=optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
        )

    def close(self) -> None:
        if self._initialised:
            import pynvml

            with contextlib.suppress(pynvml.NVMLError):  # already gone: nothing left to release
                pynvml.nvmlShutdown()
            self._initialised = False
