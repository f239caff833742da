"""Every command, when the world is not set up: one line naming the cause and the fix, exit 2, no traceback.

The CLI runs in a child process as a user runs it, with no kubeconfig, an API server that is down, or one
that answers as kube-apiserver does when its admission webhook cannot be called (HTTP 500, "failed calling
webhook"): the stand-in server answers with the real server's Status body, so no control plane is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sovereign import toolchain
from sovereign.commands.failures import explain
from sovereign.devenv.process import free_port
from sovereign.errors import BadInput

ROOT = toolchain.REPO_ROOT
REQUEST = ROOT / "operators" / "examples" / "clusterrequests" / "clusterrequest-approved.yaml"
# What kube-apiserver v1.34 answers when a fail-closed webhook does not answer (tests/test_webhook.py
# sees the same words through kubectl against the real server).
WEBHOOK_DOWN = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'Internal error occurred: failed calling webhook "admission.sovereign.dev": failed to call '
    'webhook: Post "https://127.0.0.1:9443/validate?timeout=10s": dial tcp 127.0.0.1:9443: connect: '
    "connection refused",
    "reason": "InternalError",
    "code": 500,
}
# Commands that read or write the cluster, each in its own way (create, get, the evidence pack's lists).
CLUSTER_COMMANDS = [
    ["request", "submit", str(REQUEST)],
    ["request", "status", "lattice-usdef-approved", "-n", "contractors", "--timeout", "0"],
]


def sovereign(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sovereign", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user with no kubeconfig anywhere: a HOME of their own, KUBECONFIG unset."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    return {**env, "HOME": str(home)}


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


Answer = Callable[[str, str], tuple[int, dict[str, Any]]]  # (method, path) -> (HTTP status, JSON body)


@contextmanager
def stand_in_api_server(answer: Answer) -> Iterator[str]:
    """An HTTP server answering the Kubernetes client as `answer` says; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code, doc = answer(self.command, self.path)
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def webhook_down_server() -> Iterator[str]:
    """An API server whose admission webhook does not answer: every request gets its HTTP 500."""
    with stand_in_api_server(lambda *_: (500, WEBHOOK_DOWN)) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_no_kubeconfig_names_the_setting_and_the_dev_control_plane(
    command: list[str], user_env: dict[str, str]
) -> None:
    done = sovereign(*command, env=user_env)
    assert done.returncode == 2
    line = _one_line_error(done)
    assert "no usable kubeconfig (KUBECONFIG is not set and ~/.kube/config does not exist)" in line
    assert "give --kubeconfig FILE" in line and "sovereign dev up" in line


@pytest.mark.slow
@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_api_server_that_is_down_is_named_with_how_to_start_it(
    command: list[str], user_env: dict[str, str], tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    env = {**user_env, "KUBECONFIG": str(_kubeconfig(tmp_path, url))}
    done = sovereign(*command, env=env)
    assert done.returncode == 2
    line = _one_line_error(done)
    assert f"cannot reach {url} (Connection refused): is the API server running?" in line
    assert "sovereign dev up" in line


@pytest.mark.slow
@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_unreachable_webhook_names_the_operator(
    command: list[str], user_env: dict[str, str], tmp_path: Path, webhook_down_server: str
) -> None:
    env = {**user_env, "KUBECONFIG": str(_kubeconfig(tmp_path, webhook_down_server))}
    done = sovereign(*command, env=env)
    assert done.returncode == 2
    line = _one_line_error(done)
    assert "could not call the admission webhook admission.sovereign.dev" in line
    assert line.endswith("start the operator, which serves it: sovereign operator run")


@pytest.mark.slow
def test_a_kubeconfig_variable_naming_no_file_is_named(user_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    done = sovereign("request", "status", "x", env={**user_env, "KUBECONFIG": str(missing)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"'{missing}' does not exist" in done.stderr


def test_a_missing_file_anywhere_is_bad_input_naming_it() -> None:
    found = explain(FileNotFoundError(2, "No such file or directory", "/nowhere/cluster.yaml"))
    assert isinstance(found, BadInput)
    assert str(found) == "/nowhere/cluster.yaml: No such file or directory: check the path"


def test_a_bug_is_left_to_its_traceback() -> None:
    assert explain(KeyError("status")) is None


def test_a_pulumi_update_the_webhook_refused_names_the_operator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sovereign up` when the dynamic provider's apply got the API server's 500: Pulumi's stderr, as the
    Automation API hands it over, is read for the webhook failure."""
    from pulumi import automation as auto

    from infra import workspace
    from sovereign import cli
    from sovereign.commands import stack

    pulumi_stderr = (
        "error: update failed\n\n"
        "  pulumi-python:dynamic/sovereign:KubeObject (us-defense-llamadeployment-x):\n"
        f"    error: Exception: applying LlamaDeployment usdef-east-1/x: {WEBHOOK_DOWN['message']}\n"
    )

    def refused(*_: object) -> None:
        raise auto.CommandError(auto.CommandResult(stdout="", stderr=pulumi_stderr, code=255))

    for name in ("connect_stack", "plan", "configured_bundle", "load_signing_key"):
        monkeypatch.setattr(stack, name, lambda *_: None)
    monkeypatch.setattr(stack.Screening, "enforcing", lambda *_: None)
    monkeypatch.setattr(stack.stack_config, "load", lambda *_: None)
    monkeypatch.setattr(workspace, "run", refused)
    for action in ("up", "destroy"):
        monkeypatch.setattr(sys, "argv", ["sovereign", action, "local"])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        err = capsys.readouterr().err.strip()
        assert exited.value.code == 2
        assert err.startswith(
            f"error: stack local: pulumi {'preview' if action == 'up' else 'destroy'} failed"
        )
        assert err.endswith("start the operator, which serves it: sovereign operator run"), err


# --- a contractor's request, where the API server answers but nothing decides ---------------------------
def _pending_request() -> dict[str, Any]:
    doc = yaml.safe_load(REQUEST.read_text())
    doc["metadata"].update(uid="u-1", creationTimestamp="2026-11-28T10:00:00Z")
    return json.loads(json.dumps(doc, default=str))


def _request_answers(method: str, path: str) -> tuple[int, dict[str, Any]]:
    """The API server of a cluster with the README's request, undecided: no status, no Events."""
    if method == "GET" and path.startswith(
        "/apis/sovereign.dev/v1alpha1/namespaces/contractors/clusterrequests/"
    ):
        return 200, _pending_request()
    if method == "GET" and "/events" in path:
        return 200, {"kind": "EventList", "apiVersion": "v1", "items": []}
    if method == "POST" and path.endswith("/clusterrequests"):
        name = _pending_request()["metadata"]["name"]
        message = f'clusterrequests.sovereign.dev "{name}" already exists'
        return 409, {
            "kind": "Status",
            "status": "Failure",
            "message": message,
            "reason": "AlreadyExists",
            "code": 409,
        }
    return 404, {"kind": "Status", "status": "Failure", "message": f"{path} not found", "code": 404}


@pytest.fixture
def request_env(user_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A user whose KUBECONFIG reaches an API server holding the README's request, undecided, and whose
    state dir records no operator."""
    with stand_in_api_server(_request_answers) as url:
        state = tmp_path / "state"
        yield {**user_env, "KUBECONFIG": str(_kubeconfig(tmp_path, url)), "SOVEREIGN_STATE_DIR": str(state)}


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line ending stderr, after any progress lines; never a traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and done.stderr.strip().endswith(errors[0]), done.stderr
    return errors[0]


STATUS = ["request", "status", "lattice-usdef-approved", "-n", "contractors", "--timeout", "1"]


@pytest.mark.slow
def test_request_status_with_no_operator_running_says_so_and_how_to_start_it(
    request_env: dict[str, str],
) -> None:
    done = sovereign(*STATUS, env=request_env)
    assert done.returncode == 2
    line = _error_line(done)
    server = yaml.safe_load(Path(request_env["KUBECONFIG"]).read_text())["clusters"][0]["cluster"]["server"]
    assert line.startswith(
        "error: clusterrequest contractors/lattice-usdef-approved has no decision after 1 s: "
        f"no operator is running against {server}"
    )
    assert line.endswith("sovereign operator setup && sovereign operator run")
    assert "waiting for the operator's decision" in done.stderr  # it said so while it waited


@pytest.mark.slow
def test_request_status_with_a_failing_operator_names_its_last_error(request_env: dict[str, str]) -> None:
    """The operator runs (here: this test process stands in for it, alive) and recorded why it fails."""
    server = yaml.safe_load(Path(request_env["KUBECONFIG"]).read_text())["clusters"][0]["cluster"]["server"]
    attached = Path(request_env["SOVEREIGN_STATE_DIR"]) / "attached"
    attached.mkdir(parents=True)
    error = "clusterrequest contractors/x: the API server refused: forbidden; retrying in 4 s"
    record = {
        "name": "operator",
        "pid": os.getpid(),
        "ports": {"webhook": 9443},
        "server": server,
        "last_error": {"message": error, "time": time.time()},
    }
    (attached / f"operator-{os.getpid()}.json").write_text(json.dumps(record))
    done = sovereign(*STATUS, env=request_env)
    assert done.returncode == 1
    line = _error_line(done)
    assert line.endswith(f"has no decision after 1 s: operator (pid {os.getpid()}) failing: {error}")


@pytest.mark.slow
def test_resubmitting_a_request_names_request_status_and_delete(request_env: dict[str, str]) -> None:
    done = sovereign("request", "submit", str(REQUEST), env=request_env)
    assert done.returncode == 2
    line = _one_line_error(done)
    assert line == (
        "error: clusterrequest contractors/lattice-usdef-approved already exists, and a request cannot be "
        "changed: see its decision with `sovereign request status lattice-usdef-approved -n contractors`, "
        "or withdraw it with `sovereign request delete lattice-usdef-approved -n contractors` and submit "
        "again"
    )
