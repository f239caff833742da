"""`sovereign dev up | down | status | env`: the local control plane (etcd, kube-apiserver,
kube-controller-manager, OPA), what runs against it, and a shell's environment for plain pulumi."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sovereign import toolchain
from sovereign.devenv import lifecycle
from sovereign.devenv.controlplane import READY_TIMEOUT_S
from sovereign.devenv.state import attached_components, component_health, controlplane_dir, read_state

app = typer.Typer(
    no_args_is_help=True,
    help="A local control plane (etcd, kube-apiserver, kube-controller-manager, OPA) and the shell's "
    "environment for plain pulumi.",
)
_out = Console(soft_wrap=True)

NameOpt = Annotated[str, typer.Option("--name", "-n", help="Control plane name (one per region).")]


@app.command()
def up(
    name: NameOpt = "dev",
    apiserver_port: Annotated[int, typer.Option(help="API server port (default: a free one).")] = 0,
    opa_port: Annotated[int, typer.Option(help="OPA port (default: a free one).")] = 0,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds each component gets to become ready.", min=0.1)
    ] = READY_TIMEOUT_S,
) -> None:
    """Start etcd, kube-apiserver (KubeRay's and sovereign's CRDs, the operator's RBAC, the example
    namespaces of operators/examples/namespaces.yaml onboarded) and OPA on loopback; print how to use them."""
    state = lifecycle.up(
        name,
        apiserver_port=apiserver_port,
        opa_port=opa_port,
        ready_timeout_s=ready_timeout,
        progress=lambda line: _out.print(f"[dim]·[/] {line}", highlight=False),
    )
    _out.print(f"[bold green]control plane '{name}' is up[/]")
    _out.print(f"  API server  {state['apiserver_url']}")
    _out.print(f"  OPA         {state['opa_url']}")
    _out.print(f"  kubeconfig  {state['kubeconfig']}")
    _out.print(f"\n  export KUBECONFIG={state['kubeconfig']}\n  kubectl get crds")
    _out.print(f"  stop it with: sovereign dev down --name {name}")


@app.command()
def down(name: NameOpt = "dev") -> None:
    """Stop every process of the control plane."""
    lifecycle.down(name, progress=_out.print)


@app.command()
def env(
    name: NameOpt = "dev",
    project_dir: Annotated[
        Path, typer.Option(help="Folder holding Pulumi.yaml.", file_okay=False, exists=True)
    ] = toolchain.REPO_ROOT,
) -> None:
    """Print the exports that let a shell run plain `pulumi` (the pinned CLI, the same backend and
    passphrase as `sovereign up`) and kubectl on the control plane: eval "$(sovereign dev env)".

    Also writes Pulumi's stack files (infra/stacks/Pulumi.<stack>.yaml, not tracked) from the stacks'
    declarations (infra/stacks/<stack>.yaml), as `sovereign up` does: run it again after editing one."""
    from infra import stack_config
    from infra.workspace import backend_url, pulumi_env

    for stack in stack_config.stacks(project_dir):
        stack_config.write_pulumi_stack_file(project_dir, stack, backend_url())
    variables = pulumi_env()
    # The stand-in plugins find this Python through SOVEREIGN_PYTHON; the CLI itself is not on PATH yet.
    path = [str(toolchain.binary("pulumi").parent), str(Path(variables.pop("PATH").split(os.pathsep)[0]))]
    print(f'export PATH={shlex.quote(os.pathsep.join(path))}{os.pathsep}"$PATH"')
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")
    if state := read_state(name):
        print(f"export KUBECONFIG={shlex.quote(state['kubeconfig'])}")


@app.command()
def status(
    name: NameOpt = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each component with its port, PID and health: what `dev up` started, and the operator and the data
    plane (`sovereign operator run`, `sovereign serve`) while they run against it. Exit 1 when not up or
    unhealthy."""
    state = read_state(name)
    if not state:
        if as_json:
            print(json.dumps({"name": name, "running": False}))
        else:
            _out.print(f"control plane '{name}' is not running (start it: sovereign dev up --name {name})")
        raise typer.Exit(1)
    # What `dev up` started, then what runs against it apart (the operator, the data plane).
    started = [*state["components"], *attached_components(state)]
    components = [{**c, "health": component_health(state, c)} for c in started]
    healthy = all(c["health"] == "ok" for c in components)
    if as_json:
        keys = ("name", "kubeconfig", "apiserver_url", "opa_url", "supervisor_pid")
        print(
            json.dumps(
                {
                    **{k: state.get(k) for k in keys},
                    "running": True,
                    "healthy": healthy,
                    "components": components,
                },
                indent=2,
            )
        )
    else:
        table = Table(title=f"control plane '{name}'")
        # A component's name is never cut (kube-controller-manager at 80 columns): logs are named within
        # the control plane's folder, printed once below.
        table.add_column("component", no_wrap=True, min_width=max(len(c["name"]) for c in components))
        for column in ("port", "pid", "health", "log"):
            table.add_column(column)
        folder = controlplane_dir(name)
        for c in components:
            colour = "green" if c["health"] == "ok" else "red"
            ports = c.get("ports") or {"": c["port"]}
            shown = ", ".join(f"{port} {what}".strip() for what, port in ports.items())
            log = Path(c["log"])
            log_name = str(log.relative_to(folder)) if log.is_relative_to(folder) else c["log"]
            table.add_row(c["name"], shown, str(c["pid"]), f"[{colour}]{c['health']}[/]", log_name)
        _out.print(table)
        _out.print(f"logs in {folder}")
        _out.print(
            f"kubeconfig {state['kubeconfig']}  ·  API {state['apiserver_url']}  ·  OPA {state['opa_url']}"
        )
    if not healthy:
        raise typer.Exit(1)
