"""`sovereign serve` refuses bad input with exit 2 before any Ray starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from serving.args import ServingArgs
from serving.manifest import rayservice
from sovereign import cli, toolchain
from sovereign.policy import subjects
from sovereign.policy.clusters import load_cluster


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["sovereign", "serve", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return int(exited.value.code or 0), capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> None:
        raise AssertionError("bad input must be refused before the local Ray starts")

    monkeypatch.setattr("serving.dataplane.LocalRay.start", refuse)


def _rayservice(tmp_path: Path, **policy: object) -> Path:
    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    args = ServingArgs.model_validate(
        {
            "llm_configs": [
                {"model_loading_config": {"model_id": "llama-3.1-8b-instruct", "model_source": "/m"}}
            ],
            "policy": {"cluster": cluster.model_dump(), "end_use": "commercial"},
        }
    )
    obj = rayservice("default", "eu", args)
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    config["applications"][0]["args"]["policy"].update(policy)
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    path = tmp_path / "rayservice.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


@pytest.mark.slow
def test_exactly_one_mode(monkeypatch, capsys) -> None:
    assert run(monkeypatch, capsys)[0] == 2
    code, err = run(monkeypatch, capsys, "--local", "x.yaml", "--watch")
    assert code == 2 and "exactly one of --local" in err


def test_unreadable_file(monkeypatch, capsys, tmp_path: Path) -> None:
    code, err = run(monkeypatch, capsys, "--local", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read it" in err


def test_not_a_rayservice(monkeypatch, capsys, tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    code, err = run(monkeypatch, capsys, "--local", str(path))
    assert code == 2 and "expected kind RayService" in err


def test_invalid_args_name_the_field(monkeypatch, capsys, tmp_path: Path) -> None:
    code, err = run(monkeypatch, capsys, "--local", str(_rayservice(tmp_path, end_use="piracy")))
    assert code == 2
    assert "spec.serveConfigV2.applications[0].args.policy.end_use" in err


def test_unknown_args_field_is_refused(monkeypatch, capsys, tmp_path: Path) -> None:
    code, err = run(monkeypatch, capsys, "--local", str(_rayservice(tmp_path, enduse="commercial")))
    assert code == 2 and "args.policy.enduse: unknown field" in err


def test_watch_without_an_api_server(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path))
    code, err = run(monkeypatch, capsys, "--watch")
    assert code == 2 and "sovereign dev up" in err


class _Ray:
    """A local Ray that places nothing: what the data plane asks of it is recorded."""

    num_gpus = 1
    url = "http://127.0.0.1:8000"

    def __init__(self) -> None:
        self.applied: list[list[object]] = []

    def apply(self, services: list[object]) -> None:
        self.applied.append(services)

    def applications(self) -> dict[str, object]:
        return {}


def test_a_service_this_ray_cannot_place_or_load_is_reported_with_the_fix_and_never_deployed(
    tmp_path: Path,
) -> None:
    """The local stack's 70B asks for 4 GPUs and weights nobody built: said at once, on the console and in
    its status, and not handed to Serve (where it would wait for resources while requests hang)."""
    from serving.dataplane import DataPlane

    obj = yaml.safe_load(_rayservice(tmp_path).read_text())
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    config["applications"][0]["args"]["llm_configs"][0]["deployment_config"] = {
        "num_replicas": 2,
        "ray_actor_options": {"num_gpus": 2},
    }
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    said: list[str] = []
    ray = _Ray()
    status = DataPlane(ray, progress=said.append).reconcile([obj])  # type: ignore[arg-type]
    (ready,) = [c for c in status[next(iter(status))]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
    assert "its replicas ask for 4 GPUs and this local Ray advertises 1" in ready["message"]
    assert "restart `sovereign serve` with --num-gpus 4" in ready["message"]
    assert "the weights of llama-3.1-8b-instruct are not at /m" in ready["message"]
    assert "`sovereign models build` builds tiny stand-ins for llama-3.1-8b-instruct" in ready["message"]
    assert said == [f"default/eu: Ready=False (Unschedulable) {ready['message']}"]
    assert ray.applied == [[]]  # nothing to serve: Serve is told so

    config["applications"][0]["args"]["llm_configs"][0]["deployment_config"] = {}
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    status = DataPlane(ray, progress=said.append).reconcile([obj])  # type: ignore[arg-type]
    (ready,) = [c for c in status[next(iter(status))]["conditions"] if c["type"] == "Ready"]
    assert ready["reason"] == "WeightsNotFound" and "GPUs" not in ready["message"]


def test_only_rays_own_slow_start_errors_start_ray_again() -> None:
    """LocalRay starts Ray again only when Ray or Serve said it started too slowly: the phrases it looks for
    are the ones the installed Ray raises (a Ray upgrade that rewords them fails here, not on a busy day)."""
    import inspect

    import ray._private.node
    import ray.serve._private.api

    from serving import dataplane

    raised_by = {
        "timed out during startup": inspect.getsource(ray._private.node),
        "HTTP proxies not available": inspect.getsource(ray.serve._private.api),
    }
    assert set(raised_by) == set(dataplane._SLOW_START)
    for sign, source in raised_by.items():
        assert sign in source
        assert dataplane.slow_start(Exception(f"The current node {sign}. This could happen because ..."))
    assert not dataplane.slow_start(ValueError("address already in use"))
    assert not dataplane.slow_start(RuntimeError("ray.init: num_gpus must be >= 0"))
