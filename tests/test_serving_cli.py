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
