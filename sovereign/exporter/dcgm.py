"""GPU readings exposed under dcgm-exporter's metric names, types, units and labels, so DCGM dashboards
and rules work unchanged, plus the sovereignty labels (region, cluster, model, namespace).

GPUs are read on every scrape, as dcgm-exporter does; a failed read reports the `nvml` source down and
yields no GPU series rather than stale ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sovereign.exporter.gpus import GpuReader, GpuReading, GpuSourceDown
from sovereign.exporter.health import SourceHealth

# (metric, help, reading field): help texts as in dcgm-exporter's default-counters.csv. DCGM types the
# energy series a counter, but prometheus-client's text format can only write a counter named `*_total`;
# keeping DCGM's exact name matters more (PromQL's rate/increase do not look at the type), so all are
# gauges here.
FIELDS: list[tuple[str, str, str]] = [
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "util_pct"),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "fb_used_mib"),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "fb_free_mib"),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_w"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", "energy_mj"),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temp_c"),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "sm_clock_mhz"),
]
SOURCE = "nvml"
# dcgm-exporter's labels of every GPU series, then the sovereignty labels (NodePlacement.labels' keys).
GPU_LABELS = ["gpu", "UUID", "device", "modelName", "Hostname"]
SOVEREIGNTY_LABELS = ["region", "cluster", "model", "namespace"]
LABELS = [*GPU_LABELS, *SOVEREIGNTY_LABELS]


class DcgmCollector(Collector):
    def __init__(
        self,
        reader: GpuReader,
        hostname: str,
        sovereignty: Callable[[], dict[str, str]],
        health: SourceHealth,
    ) -> None:
        self._reader = reader
        self._hostname = hostname
        self._sovereignty = sovereignty
        self._health = health

    def collect(self) -> Iterator[Metric]:
        try:
            readings = self._reader.read()
        except GpuSourceDown as exc:
            self._health.down(SOURCE, str(exc))
            return
        self._health.up(SOURCE)
        sovereignty = self._sovereignty()
        for name, help_text, field in FIELDS:
            family = GaugeMetricFamily(name, help_text, labels=LABELS)
            for gpu in readings:
                value = getattr(gpu, field)
                if value is not None:
                    labels = self._labels(gpu) | sovereignty
                    family.add_metric([labels[label] for label in LABELS], float(value))
            yield family

    def _labels(self, gpu: GpuReading) -> dict[str, str]:
        return dict(
            zip(
                GPU_LABELS,
                [str(gpu.index), gpu.uuid, gpu.device, gpu.model_name, self._hostname],
                strict=True,
            )
        )
