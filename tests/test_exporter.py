"""The exporter without an API server: the NVML seam (a real H100 trace replayed, and the real pynvml
path on this GPU-less machine), the exposition a DCGM dashboard expects, bad input, and bounded labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from sovereign import cli
from sovereign.errors import BadInput
from sovereign.exporter.cardinality import OTHER, UNKNOWN, BoundedLabel
from sovereign.exporter.dcgm import FIELDS, DcgmCollector
from sovereign.exporter.decisions import DecisionCounter, record_decision
from sovereign.exporter.engine_health import EngineHealth
from sovereign.exporter.entry import parser
from sovereign.exporter.gpu_trace import H100_TRACE, TraceReplayReader
from sovereign.exporter.gpus import GpuSourceDown, NvmlReader
from sovereign.exporter.health import SourceHealth
from sovereign.exporter.placement import NodePlacement, Workload
from sovereign.policy.engine import BUNDLE_UNVERIFIED, ENGINE_UNAVAILABLE, fail_closed
from sovereign.policy.judgement import Judgement

TRACE = H100_TRACE
REPO = Path(__file__).resolve().parent.parent
DCGM_LABELS = {"gpu", "UUID", "device", "modelName", "Hostname", "region", "cluster", "model", "namespace"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scrape(registry: CollectorRegistry) -> dict[str, list]:
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _gpu_registry(reader, placement: NodePlacement | None = None) -> tuple[CollectorRegistry, SourceHealth]:
    registry, health = CollectorRegistry(), SourceHealth()
    placement = placement or NodePlacement(region="eu-text-only", cluster="eu-1")
    registry.register(DcgmCollector(reader, "node-a", placement.labels, health))
    registry.register(health)
    return registry, health


def test_trace_replay_walks_idle_busy_idle_in_dcgm_units_and_labels() -> None:
    raw = json.loads(TRACE.read_text())
    clock = _Clock()
    registry, _ = _gpu_registry(TraceReplayReader(TRACE, clock=clock))

    idle = _scrape(registry)
    first = raw["trace"][0]
    util = idle["DCGM_FI_DEV_GPU_UTIL"][0]
    assert set(util.labels) == DCGM_LABELS
    assert util.labels["UUID"] == raw["device"]["uuid"]
    assert util.labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert (util.labels["gpu"], util.labels["device"], util.labels["Hostname"]) == ("0", "nvidia0", "node-a")
    assert (util.labels["region"], util.labels["cluster"], util.labels["model"]) == (
        "eu-text-only",
        "eu-1",
        "",
    )
    assert util.value == first["gpu_util_pct"]
    assert idle["DCGM_FI_DEV_FB_USED"][0].value == first["fb_used_bytes"] / 2**20  # MiB
    assert idle["DCGM_FI_DEV_FB_FREE"][0].value == first["fb_free_bytes"] / 2**20
    assert idle["DCGM_FI_DEV_POWER_USAGE"][0].value == first["power_mw"] / 1000  # W
    assert idle["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0].value == first["energy_mj"]  # mJ
    assert idle["DCGM_FI_DEV_GPU_TEMP"][0].value == first["temp_c"]
    assert idle["DCGM_FI_DEV_SM_CLOCK"][0].value == first["sm_clock_mhz"]
    assert idle["sovereign_exporter_source_up"][0].labels == {"source": "nvml"}
    assert idle["sovereign_exporter_source_up"][0].value == 1

    busy_at = next(s["t"] for s in raw["trace"] if s["phase"] == "busy") - first["t"]
    clock.now += busy_at + 0.01
    busy = _scrape(registry)
    assert busy["DCGM_FI_DEV_GPU_UTIL"][0].value == 100
    assert busy["DCGM_FI_DEV_POWER_USAGE"][0].value == 680.019

    clock.now += 3600  # long after the trace: the last ("after") sample holds
    after = _scrape(registry)
    assert after["DCGM_FI_DEV_GPU_UTIL"][0].value == raw["trace"][-1]["gpu_util_pct"] == 0
    assert after["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0].value == raw["trace"][-1]["energy_mj"]


def test_every_dcgm_field_is_exported_under_dcgm_exporter_names() -> None:
    registry, _ = _gpu_registry(TraceReplayReader(TRACE))
    names = set(_scrape(registry))
    assert {name for name, _, _ in FIELDS} <= names
    assert {name for name, _, _ in FIELDS} == {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_SM_CLOCK",
    }


def test_one_deployment_on_the_node_labels_every_gpu_several_leave_them_unattributed() -> None:
    placement = NodePlacement(region="eu-text-only", cluster="eu-1")
    registry, _ = _gpu_registry(TraceReplayReader(TRACE), placement)
    one = Workload(region="eu-text-only", cluster="eu-1", model="llama-3.1-8b-instruct", namespace="team-a")
    placement.assign({one})
    labels = _scrape(registry)["DCGM_FI_DEV_GPU_UTIL"][0].labels
    assert (labels["model"], labels["namespace"]) == ("llama-3.1-8b-instruct", "team-a")
    placement.assign({one, Workload("eu-text-only", "eu-1", "llama-3.3-70b-instruct", "team-b")})
    labels = _scrape(registry)["DCGM_FI_DEV_GPU_UTIL"][0].labels
    assert (labels["model"], labels["namespace"]) == ("", "")


def test_real_nvml_without_a_gpu_reports_the_source_down_and_keeps_serving() -> None:
    reader = NvmlReader()
    with pytest.raises(GpuSourceDown, match="NVML"):
        reader.read()
    registry, health = _gpu_registry(reader)
    scraped = _scrape(registry)  # no exception: the scrape still answers
    assert "DCGM_FI_DEV_GPU_UTIL" not in scraped
    assert [(s.labels, s.value) for s in scraped["sovereign_exporter_source_up"]] == [({"source": "nvml"}, 0)]
    assert "NVML" in health.missing()["nvml"]


def _exporter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sovereign.exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_once_prints_the_exposition_of_the_trace() -> None:
    done = _exporter("--once", "--gpu-trace", str(TRACE), "--node", "n1", "--region", "eu-text-only")
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    assert families["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels["Hostname"] == "n1"
    assert families["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels["region"] == "eu-text-only"


def test_once_without_nvml_exits_0_and_says_what_is_missing() -> None:
    done = _exporter("--once")
    assert done.returncode == 0, done.stderr
    assert 'sovereign_exporter_source_up{source="nvml"} 0.0' in done.stdout
    assert "source nvml is down: NVML: NVML Shared Library Not Found" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu-trace", "/nonexistent/trace.json"], "--gpu-trace /nonexistent/trace.json: cannot read it"),
        (["--gpu-trace", str(REPO / "pyproject.toml")], "not an NVML trace"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig: cannot load"),
        (["--kubeconfig", "/k", "--sovereignclusters-crd", "sovereign.dev"], "--sovereignclusters-crd"),
        (["--interval", "0"], "argument --interval: must be > 0"),
        (
            ["--scope", "cluster"],
            "--scope cluster accounts from an API server: give --in-cluster or --kubeconfig",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_option(args: list[str], message: str) -> None:
    done = _exporter("--once", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""  # nothing half-printed


@pytest.mark.slow
def test_the_cli_command_serves_the_same_exposition_in_the_cli_s_style() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", "exporter", "--once", "--gpu-trace", str(TRACE), "--node", "n1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    assert families["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels["Hostname"] == "n1"


def test_both_entry_points_listen_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parser().parse_args([]).addr == "127.0.0.1"
    monkeypatch.setenv("COLUMNS", "200")
    help_text = CliRunner().invoke(cli.app, ["exporter", "--help"]).output
    assert "╭─ Options" in help_text  # Typer's, as every other command's
    assert "[default: 127.0.0.1]" in help_text


def test_the_operator_serves_its_metrics_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its Deployment says 0.0.0.0 (infra/region_objects.py); a local run keeps them to the machine."""
    monkeypatch.setenv("COLUMNS", "200")
    help_text = CliRunner().invoke(cli.app, ["operator", "run", "--help"]).output
    option = help_text[help_text.index("--metrics-addr") :]
    option = option[: option.index("│ --")]  # its description, wrapped, up to the next option
    assert "[default: 127.0.0.1]" in option


def test_kubeconfig_and_in_cluster_are_one_or_the_other() -> None:
    done = CliRunner().invoke(cli.app, ["exporter", "--once", "--kubeconfig", "/k", "--in-cluster"])
    assert done.exit_code == 1 and isinstance(done.exception, BadInput)


def test_an_empty_trace_is_refused_naming_the_field(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"device": {"name": "x", "uuid": "GPU-1"}, "trace": []}))
    with pytest.raises(BadInput, match="field 'trace' is empty"):
        TraceReplayReader(empty)


def test_bounded_label_keeps_allowed_and_first_values_then_collapses_to_other() -> None:
    tenants = BoundedLabel(limit=3, allowed={"gov-uk"})
    assert [tenants(f"t{i}") for i in range(3)] == ["t0", "t1", "t2"]
    assert {tenants(f"noise-{i}") for i in range(1000)} == {OTHER}
    assert tenants("t1") == "t1"  # admitted values stay themselves
    assert tenants("gov-uk") == "gov-uk"  # allowed values always pass, even past the limit
    assert tenants("") == tenants(None) == UNKNOWN


def _decision_series(counter: DecisionCounter) -> set[tuple[str, ...]]:
    return {
        tuple(s.labels[k] for k in ("point", "region", "cluster", "model", "decision", "code"))
        for family in counter.counter.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_record_decision_counts_each_code_in_the_default_registry() -> None:
    def count(decision: str, code: str, model: str) -> float:
        labels = {"point": "serving", "region": "eu-text-only", "cluster": "eu-1", "model": model}
        value = REGISTRY.get_sample_value(
            "sovereign_policy_decisions_total", {**labels, "decision": decision, "code": code}
        )
        return value or 0.0

    vision = "llama-3.2-11b-vision-instruct"
    before = count("deny", "REGION_MODALITY", vision)
    record_decision("serving", "eu-text-only", "eu-1", vision, "deny", ["REGION_MODALITY", "REGION_DENIED"])
    record_decision("serving", "eu-text-only", "eu-1", "llama-3.1-8b-instruct", "allow", [])
    assert count("deny", "REGION_MODALITY", vision) == before + 1
    assert count("deny", "REGION_DENIED", vision) >= 1
    assert count("allow", "none", "llama-3.1-8b-instruct") >= 1


def test_a_flood_of_made_up_labels_adds_a_bounded_number_of_series() -> None:
    counter = DecisionCounter(registry=CollectorRegistry())
    counter.record("admission", "eu-text-only", "eu-1", "llama-3.1-8b-instruct", "allow", [])
    for i in range(2000):
        counter.record("serving", f"region-{i}", f"cluster-{i}", f"model-{i}", "deny", [f"CODE_{i}"])
    series = _decision_series(counter)
    assert ("admission", "eu-text-only", "eu-1", "llama-3.1-8b-instruct", "allow", "none") in series
    for position, limit in ((1, 32), (2, 256), (3, 64), (5, 128)):
        values = {s[position] for s in series}
        assert OTHER in values
        assert len(values) <= limit + 1
    assert len(series) <= 2 + 256  # bounded by the widest label, not by the 2000 distinct requests


@pytest.mark.parametrize(
    ("point", "decision"), [("kubectl", "deny"), ("serving", "maybe")], ids=["bad-point", "bad-decision"]
)
def test_record_decision_refuses_values_outside_its_enums(point: str, decision: str) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        record_decision(point, "r", "c", "m", decision, [])  # type: ignore[arg-type]


def test_engine_health_is_read_off_the_judgements_and_counts_each_bundle_refusal_once() -> None:
    registry = CollectorRegistry()
    health = EngineHealth(registry)

    def up(point: str, engine: str) -> float | None:
        return registry.get_sample_value("sovereign_policy_engine_up", {"point": point, "engine": engine})

    def refusals(point: str = "serving") -> float | None:
        labels = {"point": point, "reason": BUNDLE_UNVERIFIED}
        return registry.get_sample_value("sovereign_policy_bundle_refused_total", labels)

    allowed = Judgement.of({"allow": True, "violations": [], "policy_revision": "r1", "engine": "opa-rest"})
    denied = Judgement.of({"allow": False, "violations": [{"code": "REGION_MODALITY"}], "engine": "opa-rest"})
    unreachable = Judgement.of(fail_closed(ENGINE_UNAVAILABLE, "connection refused", "opa-rest"))
    unverified = Judgement.of(fail_closed(BUNDLE_UNVERIFIED, "bad signature", "opa-rest"))

    health.observe("serving", allowed)
    assert up("serving", "opa-rest") == 1
    assert refusals() == 0  # there from the start, so the first refusal shows as an increase
    health.observe("serving", denied)  # a denial is the engine answering
    assert up("serving", "opa-rest") == 1
    health.observe("serving", unreachable)
    assert up("serving", "opa-rest") == 0 and refusals() == 0
    for _ in range(3):  # one refusal, however many decisions it spoils
        health.observe("serving", unverified)
    assert up("serving", "opa-rest") == 0 and refusals() == 1
    health.observe("serving", allowed)
    health.observe("serving", unverified)  # refused again after a good bundle: a second refusal
    assert refusals() == 2
    health.observe("admission", unverified)  # each point counts its own
    assert refusals("admission") == 1


class _FakeNvml:
    """pynvml's call surface for one GPU that, like many, cannot report its energy or power. Used only
    for the unit conversions: the real pynvml path runs in the test above (no GPU here) and on the GPU
    machine (`python -m sovereign.exporter --once`)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # pynvml's own name
        pass

    NVML_TEMPERATURE_GPU, NVML_CLOCK_SM = 0, 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetUUID(self, handle: str) -> bytes:
        return b"GPU-1234"

    def nvmlDeviceGetName(self, handle: str) -> str:
        return "NVIDIA A100-SXM4-80GB"

    def nvmlDeviceGetMinorNumber(self, handle: str) -> int:
        return 3

    def nvmlDeviceGetUtilizationRates(self, handle: str):
        return type("Utilization", (), {"gpu": 37, "memory": 5})()

    def nvmlDeviceGetMemoryInfo(self, handle: str):
        return type("Memory", (), {"used": 3 * 2**30, "free": 77 * 2**30, "total": 80 * 2**30})()

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        raise self.NVMLError_NotSupported()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        raise self.NVMLError_NotSupported()

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return 41 if sensor == self.NVML_TEMPERATURE_GPU else -1

    def nvmlDeviceGetClockInfo(self, handle: str, clock: int) -> int:
        return 1410 if clock == self.NVML_CLOCK_SM else -1


def test_nvml_readings_convert_to_dcgm_units_and_unsupported_fields_are_left_out() -> None:
    reading = NvmlReader._read_one(_FakeNvml(), 0)
    assert (reading.uuid, reading.device, reading.model_name) == (
        "GPU-1234",
        "nvidia3",
        "NVIDIA A100-SXM4-80GB",
    )
    assert (reading.util_pct, reading.fb_used_mib, reading.fb_free_mib) == (37, 3072, 77 * 1024)
    assert (reading.temp_c, reading.sm_clock_mhz) == (41, 1410)
    assert reading.power_w is None and reading.energy_mj is None

    class OneGpu:
        def read(self) -> list:
            return [reading]

    scraped = _scrape(_gpu_registry(OneGpu())[0])
    assert scraped["DCGM_FI_DEV_POWER_USAGE"] == []  # no sample rather than a made-up 0
    assert scraped["DCGM_FI_DEV_FB_USED"][0].value == 3072
