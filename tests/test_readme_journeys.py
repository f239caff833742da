"""README.md's persona walkthroughs, run as written: the README cannot drift from what works.

The fenced blocks marked `<!-- journey: NAME -->` are extracted from README.md itself and run in the order
they appear (platform engineer, contractor, policy owner: each builds on the one before, as a user going
down the page), in ONE bash session, on a fresh HOME (so `~/.local/state/sovereign` is a fresh state dir
and `~` in the README means it) against the real control plane (`sovereign dev up`), the real operator
(`sovereign operator setup && sovereign operator run`) and the data plane (`sovereign serve --watch`).
Every step's exit code and key output are asserted (`JOURNEYS` below: a README line without an
expectation here fails the test, so either side changing alone is caught), and `git status` is the same
after the journeys as before.

How each README line is executed:
- as written, in the one session: its exports, `eval` and working directory (the repository root) carry
  over to the next line, with `set -o pipefail`, so `sovereign decide ... | jq` ends with decide's exit
  code, as the README's `# exit 1` says;
- `make TARGET` runs that target's recipe from the Makefile: its prerequisites (`tools`, `venv`) are this
  test session's own (the tool cache, this venv), and each recipe it runs must be one `sovereign` command
  (checked), so running the recipe is running the target;
- `source .venv/bin/activate` activates the venv this test runs in (a worktree sharing another checkout's
  venv has no .venv of its own; in a plain checkout it is the same file);
- a line whose comment starts `# in another terminal` runs in the background in a new shell that has only
  activated the venv (nothing exported in the session carries over, as in a new terminal); the next line
  runs once it has printed what JOURNEYS waits for, and it is stopped (Ctrl-C) at the end;
- a heredoc (`cat > FILE <<'JSON' ... JSON`) is one step.
The environment differs from a user's only where parallel test runs would collide or the machine's cache
lives: the tool cache ($SOVEREIGN_TOOLS_DIR, the user's own), this checkout's code first on PYTHONPATH, and
free ports for the webhook and the Serve proxy ($SOVEREIGN_WEBHOOK_PORT, $SOVEREIGN_SERVE_PORT, which their
commands read).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from sovereign import toolchain
from sovereign.devenv.process import free_port
from sovereign.devenv.state import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.controlplane, pytest.mark.timeout(1800)]

ROOT = toolchain.REPO_ROOT
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- journey: ([\w-]+)[^>]*-->\n```bash\n(.*?)```", re.S)
BACKGROUND = re.compile(r"#\s*in another terminal")
STEP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Step:
    """What a README line must do: its exit code and what its output (stdout and stderr) says."""

    rc: int
    says: tuple[str, ...] = ()


@dataclass(frozen=True)
class Background:
    """A line run in another terminal: what it must print before the next line runs, and the port it must
    listen on by then (the environment variable that chose it)."""

    says: tuple[str, ...]
    port_env: str


# Keyed by the README line without its comment. {home} is the journey's HOME.
JOURNEYS: dict[str, dict[str, Step | Background]] = {
    "platform-engineer": {
        "make bundle": Step(0, ("policy bundle revision", "{home}/.local/state/sovereign/trust/")),
        "make dev-up && source .venv/bin/activate": Step(
            0,
            (
                "starting kube-apiserver",
                "control plane 'dev' is up",
                "screening list: {home}/.local/state/sovereign/screening/dev-sample.json, a dated SAMPLE",
                "export KUBECONFIG={home}/.local/state/sovereign/controlplanes/dev/kubeconfig",
            ),
        ),
        "export KUBECONFIG=~/.local/state/sovereign/controlplanes/dev/kubeconfig": Step(0),
        "sovereign preview local && sovereign up local": Step(
            0, ("Previewing update (local)", "Updating (local)", "created", "usdef-east-1-chat-70b")
        ),
        'eval "$(sovereign dev env)"': Step(0),
        "pulumi up --yes -s local --policy-pack infra/policy_pack": Step(0, ("unchanged",)),
        "sovereign operator setup && sovereign operator run": Background(
            (
                "operator credentials written to {home}/.local/state/sovereign/operator",
                "starting as system:serviceaccount:sovereign-system:sovereign-operator",
            ),
            "SOVEREIGN_WEBHOOK_PORT",
        ),
        "sovereign serve --watch": Background(
            (
                "watching RayServices through {home}/.local/state/sovereign/controlplanes/dev/kubeconfig",
                "usdef-east-1/usdef-east-1-chat-70b: Ready=False (Unschedulable) cannot place it: its "
                "replicas ask for 4 GPUs and this local Ray advertises 0: restart `sovereign serve` with "
                "--num-gpus 4",
                "the weights of llama-3.3-70b-instruct are not at /models/llama-3.3-70b-instruct",
                "`sovereign models build` builds tiny stand-ins for",
            ),
            "SOVEREIGN_SERVE_PORT",
        ),
        "sovereign dev status": Step(
            0, ("etcd", "kube-apiserver", "kube-controller-manager", "opa", "operator", "data plane")
        ),
    },
    "contractor": {
        "sovereign request submit operators/examples/clusterrequests/clusterrequest-approved.yaml": Step(
            0, ("clusterrequest contractors/lattice-usdef-approved submitted",)
        ),
        "sovereign request status lattice-usdef-approved -n contractors": Step(
            0,
            (
                "clusterrequest contractors/lattice-usdef-approved: Approved",
                "SovereignCluster usdef-lattice-2",
            ),
        ),
        "sovereign decide policies/examples/us-defense-allowed.json": Step(0, ('"allow": true',)),
        "sovereign decide --cluster clusters/usdef-east-1.yaml --deployment chat-70b": Step(
            0, ('"allow": true',)
        ),
        "sovereign matrix": Step(0, ("{home}/.local/state/sovereign/matrix/",)),
        "cat > ~/munich.json <<'JSON'": Step(0),
        "sovereign decide ~/munich.json | jq '{allow, violations, obligations}'": Step(
            1, ('"allow": false', "EU_MULTIMODAL_LICENCE", "BUILT_WITH_LLAMA")
        ),
    },
    "policy-owner": {
        "cp -r policies ~/my-policies": Step(0),
        "sed -i 's/ defense,//' ~/my-policies/data/regions/us-defense.yaml": Step(0),
        "sovereign bundle build --policies ~/my-policies --out ~/candidate": Step(
            0, ("policy bundle revision", "{home}/candidate/")
        ),
        "printf 'regions:\\n  us-defense: {kubeconfig: %s}\\n' \"$KUBECONFIG\" > ~/fleet.yaml": Step(0),
        "sovereign whatif --bundle ~/candidate --fleet ~/fleet.yaml": Step(
            1, ("usdef-east-1-chat-70b", "would suspend")
        ),
        "sovereign bundle publish ~/candidate --fleet ~/fleet.yaml": Step(
            1, ("refusing to publish", "--accept-suspensions usdef-east-1-chat-70b")
        ),
        "sovereign bundle publish ~/candidate --fleet ~/fleet.yaml "
        "--accept-suspensions usdef-east-1-chat-70b": Step(0, ("published policy revision",)),
        "sovereign fleet status --fleet ~/fleet.yaml": Step(0, ("us-defense", "usdef-east-1-chat-70b")),
    },
}


# --- reading the README ---------------------------------------------------------------------------------
def _steps(block: str) -> list[str]:
    """The block's commands: one per line (comment-only lines skipped), a heredoc with its body."""
    lines, steps, i = block.splitlines(), [], 0
    while i < len(lines):
        line, i = lines[i], i + 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        step = [line]
        if heredoc := re.search(r"<<-?'?(\w+)'?", line):
            while lines[i] != heredoc[1]:
                step.append(lines[i])
                i += 1
            step.append(lines[i])
            i += 1
        steps.append("\n".join(step))
    return steps


def _key(step: str) -> str:
    """The step's first line without its trailing comment: how JOURNEYS names it."""
    return re.sub(r"\s+#\s.*$", "", step.splitlines()[0]).strip()


def readme_journeys() -> list[tuple[str, list[str]]]:
    return [(name, _steps(block)) for name, block in BLOCK.findall(README.read_text())]


def make_recipes(venv_bin: Path) -> dict[str, list[str]]:
    """Each Makefile target's recipe, `$(VENV)/bin/` being this test's venv."""
    recipes: dict[str, list[str]] = {}
    target = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if found := re.match(r"^([a-z-]+):", line):
            target = found[1]
            recipes[target] = []
        elif line.startswith("\t") and target:
            recipes[target].append(line.strip().replace("$(VENV)/bin/", f"{venv_bin}/"))
    return recipes


# --- running it -----------------------------------------------------------------------------------------
@dataclass
class Done:
    rc: int
    output: str


@dataclass
class Session:
    """One bash session fed the README's lines one at a time; each line's output and exit code kept."""

    env: dict[str, str]
    workdir: Path
    prelude: str
    count: int = 0
    background: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shell = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=(self.workdir / "session.log").open("w"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=self.env,
            text=True,
            start_new_session=True,
        )
        self._feed(self.prelude)

    def _feed(self, text: str) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.write(text + "\n")
        self.shell.stdin.flush()

    def run(self, step: str) -> Done:
        self.count += 1
        out, rc = self.workdir / f"{self.count}.out", self.workdir / f"{self.count}.rc"
        # Braces, not a subshell: exports, eval and `source` take effect in the session, as in a terminal.
        self._feed(f"{{ {step}\n}} > {out} 2>&1 < /dev/null; echo $? > {rc}.part; mv {rc}.part {rc}")
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not rc.exists():
            assert self.shell.poll() is None, f"the shell exited at: {step}"
            assert time.monotonic() < deadline, (
                f"{step!r} still running after {STEP_TIMEOUT_S:.0f} s:\n{_tail(out)}"
            )
            time.sleep(0.2)
        return Done(int(rc.read_text()), out.read_text(errors="replace"))

    def start(self, step: str, activate: str) -> Path:
        """The line in a new terminal: a new shell that activated the venv, nothing else carried over."""
        self.count += 1
        out = self.workdir / f"{self.count}.out"
        proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile", "-c", f"{self.prelude}\n{activate}\n{step}"],
            stdin=subprocess.DEVNULL,
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )
        self.background.append((step, proc, out))
        return out

    def close(self) -> None:
        for _, proc, _ in reversed(self.background):  # Ctrl-C in each terminal, the data plane first
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for step, proc, out in self.background:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                pytest.fail(f"{step!r} did not stop on Ctrl-C within 60 s:\n{_tail(out)}")
        self._feed("exit")
        self.shell.wait(timeout=30)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(out: Path, says: list[str], port: int, proc: subprocess.Popen[bytes], step: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        text = out.read_text(errors="replace")
        missing = [line for line in says if line not in text]
        if not missing and _listening(port):
            return
        assert proc.poll() is None, f"{step!r} exited ({proc.returncode}):\n{_tail(out)}"
        assert time.monotonic() < deadline, (
            f"{step!r} has not printed {missing} (or listened on {port}):\n{_tail(out)}"
        )
        time.sleep(0.5)


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _processes_under(home: Path) -> list[psutil.Process]:
    """Every process the journeys started: run with that HOME, or naming a path under it."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        named = any(str(home) in arg for arg in proc.info["cmdline"] or [])
        if named or (proc.info["environ"] or {}).get("HOME") == str(home):
            found.append(proc)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    yield home
    for proc in _processes_under(home):  # whatever a failed journey left running
        proc.kill()


def _environment(home: Path) -> dict[str, str]:
    """A user's environment with a fresh HOME: nothing of this session's state, Pulumi or kubeconfig."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SOVEREIGN_", "PULUMI_", "XDG_", "VIRTUAL_ENV", "PYTEST_"))
        and key not in ("KUBECONFIG", "HOME")
    }
    return {
        **kept,
        "HOME": str(home),
        "SOVEREIGN_TOOLS_DIR": str(toolchain.tools_dir()),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "SOVEREIGN_WEBHOOK_PORT": str(free_port()),
        "SOVEREIGN_SERVE_PORT": str(free_port()),
    }


def _prelude() -> tuple[str, str]:
    """The session's functions (how `make` and the venv's activation run here) and the activation line."""
    venv_bin = Path(sys.executable).parent
    recipes = make_recipes(venv_bin)
    cases = []
    for target in ("bundle", "dev-up"):
        (command,) = recipes[target]
        assert command.startswith(f"{venv_bin}/sovereign "), f"make {target} runs {command!r}: teach the test"
        cases.append(f"{target}) {command} ;;")
    activate_script = venv_bin / "activate"
    activate = (
        f'builtin source "{activate_script}"'
        if activate_script.is_file()
        else f'export PATH="{venv_bin}:$PATH"'
    )
    prelude = "\n".join(
        [
            "set -o pipefail",
            'make() { case "$1" in '
            + " ".join(cases)
            + ' *) echo "make $1: not a journey target" >&2; return 2 ;; esac; }',
            f'source() {{ if [ "$1" = .venv/bin/activate ]; then {activate}; '
            'else builtin source "$@"; fi; }',
        ]
    )
    return prelude, "source .venv/bin/activate"


def _everything_listed_and_up_again(session: Session, env: dict[str, str]) -> list[int]:
    """After the journeys (not a README line): `dev status --json` lists what `dev up` started and what runs
    against it, each with its ports and healthy, and `dev up` again finds it up; their PIDs."""
    done = session.run("sovereign dev status --json 2>/dev/null")
    assert done.rc == 0, done.output
    report = json.loads(done.output)
    components = {c["name"]: c for c in report["components"]}
    assert {name: c["health"] for name, c in components.items()} == {
        name: "ok"
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "opa", "operator", "data plane")
    }
    assert all(isinstance(c["port"], int) for c in components.values())  # each one's port, never None
    assert components["operator"]["ports"] == {"webhook": int(env["SOVEREIGN_WEBHOOK_PORT"])}
    assert components["data plane"]["ports"]["serve"] == int(env["SOVEREIGN_SERVE_PORT"])
    again = session.run("sovereign dev up")
    assert again.rc == 0 and "control plane 'dev' is already up" in again.output, again.output
    return [report["supervisor_pid"], *(c["pid"] for c in components.values())]


def test_the_readme_marks_every_persona_journey() -> None:
    assert [name for name, _ in readme_journeys()] == [
        "platform-engineer",
        "contractor",
        "contractor",
        "policy-owner",
    ]
    for name, steps in readme_journeys():
        assert {_key(step) for step in steps} <= JOURNEYS[name].keys(), (
            f"{name}: a README line no test expects"
        )
    every = {_key(step) for _, steps in readme_journeys() for step in steps}
    for name, expected in JOURNEYS.items():
        assert expected.keys() <= every, f"{name}: expected lines the README no longer has"


def test_every_readme_journey_runs_as_written(home: Path, tmp_path: Path) -> None:
    before = _git_status()
    env = _environment(home)
    prelude, activate = _prelude()
    workdir = tmp_path / "steps"
    workdir.mkdir()
    session = Session(env, workdir, prelude)
    timings: list[str] = []
    try:
        for name, steps in readme_journeys():
            for step in steps:
                expected = JOURNEYS[name][_key(step)]
                says = [line.format(home=home) for line in expected.says]
                started = time.monotonic()
                if isinstance(expected, Background):
                    assert BACKGROUND.search(step.splitlines()[0]), (
                        f"{step!r}: not marked as another terminal's"
                    )
                    out = session.start(step, activate)
                    _wait_for(out, says, int(env[expected.port_env]), session.background[-1][1], step)
                else:
                    done = session.run(step)
                    assert done.rc == expected.rc, (
                        f"{step!r} exited {done.rc}, not {expected.rc}:\n{done.output}"
                    )
                    assert "Traceback" not in done.output, f"{step!r}:\n{done.output}"
                    for line in says:
                        assert line in done.output, f"{step!r} did not say {line!r}:\n{done.output}"
                timings.append(f"{time.monotonic() - started:6.1f} s  {_key(step)}")
        pids = _everything_listed_and_up_again(session, env)
    finally:
        print("\n".join(timings))
        session.close()  # Ctrl-C in the operator's and the data plane's terminals
        stopped = subprocess.run(
            ["bash", "-c", f"{prelude}\n{activate}\nsovereign dev down && sovereign dev status --json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr  # status: not running
    assert "control plane 'dev' stopped" in stopped.stdout and '"running": false' in stopped.stdout
    deadline = time.monotonic() + 30
    while (left := _processes_under(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], [p.info["cmdline"] for p in left]
    assert not [pid for pid in pids if pid_alive(pid)]
    assert _git_status() == before  # no journey dirties the repository (a tracked or an untracked file)
