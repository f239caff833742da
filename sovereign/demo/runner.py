"""`sovereign demo`: the whole mission on real parts, one step after another, each outcome checked.

Every step runs what a user would run (the `sovereign` CLI, the pinned Pulumi CLI, kubectl-equivalent API
calls, the official `openai` client); nothing is simulated. Background processes (operators, data planes,
exporters, Prometheus) are children of this process and die with it; the per-region control planes are
detached supervisors that `stop()` (and `sovereign demo down`) take down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml
from kubernetes import client, config
from rich.console import Console
from rich.table import Table

from infra.workspace import pulumi_dir
from sovereign import toolchain
from sovereign.demo.scenario import POLICY_CHANGE, REGIONS, RegionPlan, write_cluster, write_stack
from sovereign.devenv import lifecycle
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.devenv.prometheus import PrometheusConfig, PrometheusServer, ScrapeJob
from sovereign.devenv.state import state_root
from sovereign.errors import SovereignError
from sovereign.policy.bundle import PolicySources, bundle_dir, ensure_bundle
from sovereign.policy.screening import ALLOW_SAMPLE_ENV, SAMPLE_LIST

SOVEREIGN = [sys.executable, "-m", "sovereign"]
GPU_TRACE = toolchain.REPO_ROOT / "tests" / "fixtures" / "nvml" / "nvml-h100-trace.json"
REQUESTS_DIR = toolchain.REPO_ROOT / "operators" / "examples" / "clusterrequests"
# A 1x1 PNG: the smallest real image an OpenAI client can send.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


# Set in the environment of everything the demo starts, and so of what those fork: Ray renames its
# processes (ray::DashboardAgent), so a marker in the environment is what finds them for `demo down`.
MEMBER_ENV = "SOVEREIGN_DEMO_MEMBER"


def demo_root() -> Path:
    return state_root() / "demo"


@dataclass
class Region:
    plan: RegionPlan
    kubeconfig: Path = Path()
    opa_url: str = ""
    pki: Path = Path()
    serve_port: int = 0
    exporter_port: int = 0
    operator_metrics_port: int = 0
    api: client.ApiClient | None = None

    def endpoint(self, deployment_name: str) -> str:
        namespace = self.plan.cluster
        return f"http://127.0.0.1:{self.serve_port}/{namespace}/{namespace}-{deployment_name}/v1"


@dataclass
class Outcome:
    name: str
    ok: bool
    detail: str


@dataclass
class Demo:
    console: Console
    regions: list[Region] = field(default_factory=lambda: [Region(plan) for plan in REGIONS])
    processes: list[ManagedProcess] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    prometheus: PrometheusServer | None = None
    weights: dict[str, Path] = field(default_factory=dict)
    matrix_html: Path | None = None

    @property
    def root(self) -> Path:
        return demo_root()

    # --- reporting -----------------------------------------------------------------------------------
    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def say(self, line: str) -> None:
        self.console.print(f"  {line}", highlight=False, markup=False)

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        self.outcomes.append(Outcome(name, ok, detail))
        mark = "[green]passed[/]" if ok else "[red]FAILED[/]"
        self.console.print(f"  {mark}: {name}" + (f" — {detail}" if detail else ""), highlight=False)
        return ok

    # --- helpers -------------------------------------------------------------------------------------
    def sovereign(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SOVEREIGN, *args], capture_output=True, text=True, timeout=timeout)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        env = {**(env or {}), MEMBER_ENV: str(self.root)}
        proc = ManagedProcess(name, argv, self.root / "logs" / f"{name}.log", env=env)
        proc.start()
        self.processes.append(proc)
        return proc

    def custom(self, region: Region) -> client.CustomObjectsApi:
        assert region.api is not None
        return client.CustomObjectsApi(region.api)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if result := probe():
                    return result
            except Exception as exc:  # not there yet: the thing being waited for is still starting
                last = exc
            time.sleep(1.0)
        raise SovereignError(
            f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else "")
        )

    # --- steps ---------------------------------------------------------------------------------------
    def build_models(self) -> None:
        self.step("1. Tiny local Llama checkpoints (no download) and the signed policy bundle")
        from sovereign.models.tiny import build_all

        for model, folder, built in build_all():
            self.weights[model.stands_in_for] = folder
            state = "built" if built else "up to date"
            self.say(f"{model.name}: {state} at {folder} (stands in for {model.stands_in_for})")
        bundle = ensure_bundle(progress=self.say)
        self.say(f"policy bundle revision {bundle.revision}, signed ({bundle.rego})")

    def start_control_planes(self) -> None:
        self.step("2. One Kubernetes control plane per sovereign region (etcd, kube-apiserver, OPA)")
        for region in self.regions:
            name = region.plan.region
            state = lifecycle.up(name, progress=lambda line, n=name: self.say(f"[{n}] {line}"))
            region.kubeconfig = Path(state["kubeconfig"])
            region.opa_url = str(state["opa_url"])
            region.pki = Path(state["ca_file"]).parent
            region.api = config.new_client_from_config(config_file=str(region.kubeconfig))
            self.say(f"[{name}] API {state['apiserver_url']}  OPA {region.opa_url}")

    def start_prometheus(self) -> None:
        self.step("3. Prometheus, and a sovereign exporter per region")
        jobs = []
        for region in self.regions:
            region.exporter_port = free_port()
            self.spawn(
                f"exporter-{region.plan.region}",
                [
                    *SOVEREIGN,
                    "exporter",
                    "--addr=127.0.0.1",
                    f"--port={region.exporter_port}",
                    f"--region={region.plan.region}",
                    f"--cluster={region.plan.cluster}",
                    f"--kubeconfig={region.kubeconfig}",
                    f"--gpu-trace={GPU_TRACE}",
                    "--interval=2",
                    f"--node=node-{region.plan.cluster}",
                ],
            )
            jobs.append(ScrapeJob(f"exporter-{region.plan.region}", [f"127.0.0.1:{region.exporter_port}"]))
        self.prometheus = PrometheusServer(PrometheusConfig(state_dir=self.root / "prometheus", jobs=jobs))
        self.prometheus.start()
        self.say(f"Prometheus {self.prometheus.url} (GPU samples replay a real H100 NVML trace: no GPU here)")

    def _project(self) -> Path:
        project = self.root / "project"
        shutil.rmtree(project, ignore_errors=True)
        (project / "infra").mkdir(parents=True)
        shutil.copy(toolchain.REPO_ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
        (project / "infra" / "__main__.py").symlink_to(toolchain.REPO_ROOT / "infra" / "__main__.py")
        return project

    def deploy_stacks(self) -> None:
        self.step(
            "4. `sovereign up` of each region's Pulumi stack (the real Pulumi CLI, policy pack at preview)"
        )
        project = self._project()
        clusters = project / "clusters"
        for region in self.regions:
            plan = region.plan
            write_cluster(plan, self.weights, clusters)
            if plan.refused_file:
                shutil.copy(
                    toolchain.REPO_ROOT / "clusters" / plan.refused_file, clusters / plan.refused_file
                )
                write_stack(
                    plan,
                    project,
                    region.kubeconfig,
                    [f"clusters/{plan.cluster_file}", f"clusters/{plan.refused_file}"],
                )
                refused = self.sovereign("preview", plan.region, "--project-dir", str(project))
                text = refused.stdout + refused.stderr
                codes = [code for code in plan.expected_refusal if code in text]
                for line in text.splitlines():
                    if "refused by the policy" in line or any(code in line for code in plan.expected_refusal):
                        self.say(f"[{plan.region}] {line.strip()[:220]}")
                self.expect(
                    f"{plan.region}: preview refuses {plan.refused_file}",
                    refused.returncode == 1 and len(codes) == len(plan.expected_refusal),
                    ", ".join(codes),
                )
            write_stack(plan, project, region.kubeconfig, [f"clusters/{plan.cluster_file}"])
            done = self.sovereign("up", plan.region, "--project-dir", str(project))
            (self.root / "logs" / f"pulumi-up-{plan.region}.log").write_text(done.stdout + done.stderr)
            summary = [
                line.strip() for line in done.stdout.splitlines() if " created" in line and "+ " in line
            ]
            self.say(f"[{plan.region}] {summary[-1] if summary else done.stderr.strip()[-300:]}")
            created = self.custom(region).list_namespaced_custom_object(
                "sovereign.dev", "v1alpha1", plan.cluster, "llamadeployments"
            )["items"]
            self.expect(
                f"{plan.region}: stack up",
                done.returncode == 0 and len(created) == len(plan.deployments),
                f"{len(created)} LlamaDeployments in {plan.cluster}",
            )

    def start_operators(self) -> None:
        self.step("5. The sovereign operator per region (its own ServiceAccount token, admission webhook)")
        for region in self.regions:
            name = region.plan.region
            credentials = self.root / "operators" / name
            done = self.sovereign(
                "operator",
                "setup",
                f"--out={credentials}",
                f"--ca-dir={region.pki}",
                f"--webhook-port={free_port()}",
                f"--kubeconfig={region.kubeconfig}",
            )
            if done.returncode != 0:
                raise SovereignError(f"operator setup for {name} failed: {done.stderr.strip()}")
            region.operator_metrics_port = free_port()
            health = free_port()
            self.spawn(
                f"operator-{name}",
                [
                    *SOVEREIGN,
                    "operator",
                    "run",
                    f"--credentials={credentials}",
                    "--drift-interval=2",
                    f"--metrics-port={region.operator_metrics_port}",
                    f"--screening-list={SAMPLE_LIST}",
                    f"--liveness=http://127.0.0.1:{health}/healthz",
                ],
                # The demo screens against the shipped sample list, accepted for local runs only.
                env={"SOVEREIGN_OPA_URL": region.opa_url, "PYTHONUNBUFFERED": "1", ALLOW_SAMPLE_ENV: "1"},
            )
            self.wait(
                f"the {name} operator",
                lambda h=health: requests.get(f"http://127.0.0.1:{h}/healthz", timeout=1).ok,
                120,
            )
            self.say(
                f"[{name}] operator live; admission decisions on :{region.operator_metrics_port}/metrics"
            )
        assert self.prometheus is not None
        self.prometheus.add_jobs(
            *(
                ScrapeJob(f"operator-{r.plan.region}", [f"127.0.0.1:{r.operator_metrics_port}"])
                for r in self.regions
            )
        )

    def start_data_planes(self) -> None:
        self.step("6. The local data plane: admitted RayServices served on a local Ray per region")
        for region in self.regions:
            region.serve_port = free_port()
            self.spawn(
                f"dataplane-{region.plan.region}",
                [
                    *SOVEREIGN,
                    "serve",
                    "--watch",
                    f"--kubeconfig={region.kubeconfig}",
                    f"--port={region.serve_port}",
                    "--num-cpus=4",  # logical CPUs for Ray's scheduler: one per model replica
                    # the GPUs the region's deployments declare; no device here, so they run on CPU
                    f"--num-gpus={sum(d.gpus_per_replica for d in region.plan.deployments)}",
                ],
                env={"PYTHONUNBUFFERED": "1"},
            )
        jobs = []
        for region in self.regions:
            for deployment in region.plan.deployments:
                url = region.endpoint(deployment.name)
                self.wait(f"{url}/models", lambda u=url: requests.get(f"{u}/models", timeout=5).ok, 600)
                if not deployment.is_vision:  # the model replica, not just the ingress, answers
                    probe = {"model": deployment.model, "prompt": "ping", "max_tokens": 1}
                    self.wait(
                        f"a completion from {url}",
                        lambda u=url, p=probe: requests.post(f"{u}/completions", json=p, timeout=30).ok,
                        600,
                    )
                self.say(f"[{region.plan.region}] serving {deployment.model} at {url}")
                namespace, name = region.plan.service(deployment)
                jobs.append(
                    ScrapeJob(
                        f"serving-{name}", [f"127.0.0.1:{region.serve_port}"], f"/{namespace}/{name}/metrics"
                    )
                )
        assert self.prometheus is not None
        self.prometheus.add_jobs(*jobs)

    def summarise(self) -> None:
        self.step("7. What each region admitted and refused")
        table = Table("region", "deployment", "model", "end use", "decision", "codes", "citation")
        for region in self.regions:
            namespace = region.plan.cluster
            items = self.custom(region).list_namespaced_custom_object(
                "sovereign.dev", "v1alpha1", namespace, "llamadeployments"
            )["items"]
            for item in items:
                status = item.get("status") or {}
                violations = status.get("violations") or []
                compliant = next(
                    (c for c in status.get("conditions", []) if c.get("type") == "PolicyCompliant"), {}
                )
                allowed = compliant.get("status") == "True"
                table.add_row(
                    region.plan.region,
                    item["metadata"]["name"],
                    item["spec"]["model"],
                    item["spec"]["endUse"],
                    "[green]admitted[/]" if allowed else "[red]refused[/]",
                    ", ".join(v["code"] for v in violations) or "-",
                    (violations[0]["citation"][:60] if violations else "-"),
                )
                self.expect(f"{region.plan.region}: {item['metadata']['name']} admitted", allowed)
            if region.plan.refused_file:
                table.add_row(
                    region.plan.region,
                    region.plan.refused_file.removesuffix(".yaml"),
                    "(preview)",
                    "",
                    "[red]refused at preview[/]",
                    ", ".join(region.plan.expected_refusal),
                    "Llama 3.2 AUP",
                )
        self.console.print(table)

    def sample_requests(self) -> None:
        self.step("8. Sample requests through the official openai client")
        import openai

        eu = self._region("eu-text-only")
        us = self._region("us-defense")
        text_client = openai.OpenAI(base_url=eu.endpoint("chat"), api_key="demo", max_retries=0, timeout=120)
        answer = text_client.chat.completions.create(
            model=eu.plan.deployments[0].model,
            messages=[{"role": "user", "content": "Say hello to Frankfurt."}],
            max_tokens=12,
            extra_headers={"x-tenant-id": "demo-eu"},
        )
        content = answer.choices[0].message.content or ""
        self.say(f"EU text -> {content!r} ({answer.usage.completion_tokens if answer.usage else '?'} tokens)")
        self.expect(
            "EU text request answered", answer.usage is not None and answer.usage.completion_tokens > 0
        )

        image_message = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}},
                ],
            }
        ]
        try:
            text_client.chat.completions.create(
                model=eu.plan.deployments[0].model, messages=image_message, max_tokens=8
            )  # type: ignore[arg-type]
            self.expect("EU image request refused with REGION_MODALITY", False, "it was answered")
        except openai.APIStatusError as exc:
            self.say(f"EU image -> HTTP {exc.status_code}: {str(exc.body)[:200]}")
            self.expect(
                "EU image request refused with REGION_MODALITY",
                exc.status_code == 403 and "REGION_MODALITY" in json.dumps(exc.body),
            )

        vision = next(d for d in us.plan.deployments if d.is_vision)
        vision_client = openai.OpenAI(
            base_url=us.endpoint(vision.name), api_key="demo", max_retries=0, timeout=300
        )
        seen = vision_client.chat.completions.create(
            model=vision.model,
            messages=image_message,
            max_tokens=8,
            extra_headers={"x-tenant-id": "demo-us"},  # type: ignore[arg-type]
        )
        self.say(f"us-defense image -> {seen.choices[0].message.content!r}")
        self.expect(
            "us-defense image request answered", seen.usage is not None and seen.usage.completion_tokens > 0
        )

    def _region(self, name: str) -> Region:
        return next(r for r in self.regions if r.plan.region == name)

    def cluster_requests(self) -> None:
        self.step("9. Government contractors' ClusterRequests")
        for region_name, file, expected in (
            ("us-defense", "clusterrequest-approved.yaml", "Approved"),
            ("five-eyes", "clusterrequest-denied.yaml", "Denied"),
        ):
            region = self._region(region_name)
            kubeconfig = f"--kubeconfig={region.kubeconfig}"
            subprocess.run(
                [
                    str(toolchain.binary("kubectl")),
                    kubeconfig,
                    "apply",
                    "-f",
                    str(toolchain.REPO_ROOT / "operators" / "examples" / "namespaces.yaml"),
                ],
                capture_output=True,
                check=True,
            )
            submitted = self.sovereign("request", "submit", str(REQUESTS_DIR / file), kubeconfig)
            name = yaml.safe_load((REQUESTS_DIR / file).read_text())["metadata"]["name"]
            shown = self.sovereign("request", "status", name, "-n", "contractors", kubeconfig, "--timeout=90")
            for line in shown.stdout.splitlines()[:8]:
                self.say(f"[{region_name}] {line}")
            status = self.sovereign(
                "request", "status", name, "-n", "contractors", kubeconfig, "--json", "--timeout=5"
            )
            phase = (
                json.loads(status.stdout or "{}").get("phase")
                if status.stdout.strip().startswith("{")
                else None
            )
            detail = f"phase {phase}" + (
                "" if submitted.returncode == 0 else f"; submit: {submitted.stderr.strip()[:120]}"
            )
            ok = phase == expected and (expected == "Approved" or "DENIED_PARTY" in shown.stdout)
            self.expect(
                f"ClusterRequest {name} {expected.lower()}"
                + (" (screening hit)" if expected == "Denied" else ""),
                ok,
                detail,
            )

    def write_matrix(self) -> None:
        self.step("10. The compliance matrix (every variant x every cluster x every end use)")
        out = self.root / "matrix"
        done = self.sovereign("matrix", f"--out={out}")
        self.matrix_html = out / "matrix.html"
        self.say((done.stderr.strip().splitlines() or [""])[-1])
        self.expect(
            "compliance matrix written",
            done.returncode == 0 and self.matrix_html.is_file(),
            str(self.matrix_html),
        )

    def change_policy(self) -> None:
        change = POLICY_CHANGE
        self.step(f"11. A policy change: {change['description']}")
        changed = self.root / "policies-changed"
        shutil.rmtree(changed, ignore_errors=True)
        shutil.copytree(toolchain.REPO_ROOT / "policies", changed)
        target = changed / str(change["file"])
        text = target.read_text()
        if str(change["old"]) not in text:
            raise SovereignError(
                f"the demo's policy change no longer applies: {change['old']!r} not in {target}"
            )
        target.write_text(text.replace(str(change["old"]), str(change["new"])))
        from sovereign.policydata import load_policy_data

        sources = PolicySources(
            root=changed, load_data=lambda: load_policy_data(changed / "data").opa_document()
        )
        bundle = ensure_bundle(sources, bundle_dir(), progress=self.say, force=True)
        self.say(f"re-signed bundle revision {bundle.revision}; every region's OPA reloads it (--watch)")
        region_name, deployment = change["suspended"]  # type: ignore[misc]
        region = self._region(str(region_name))
        namespace, name = region.plan.cluster, f"{region.plan.cluster}-{deployment}"

        def suspended() -> bool:
            svc = self.custom(region).get_namespaced_custom_object(
                "ray.io", "v1", namespace, "rayservices", name
            )
            return bool(svc["spec"].get("rayClusterConfig", {}).get("suspend") or svc["spec"].get("suspend"))

        try:
            self.wait(f"RayService {namespace}/{name} suspended", suspended, 120)
            ok = True
        except SovereignError:
            ok = False
        ld = self.custom(region).get_namespaced_custom_object(
            "sovereign.dev", "v1alpha1", namespace, "llamadeployments", name
        )
        codes = [v["code"] for v in (ld.get("status") or {}).get("violations") or []]
        self.say(f"[{region_name}] {name}: RayService suspended={ok}, violations {codes}")
        self.expect(f"policy change suspends {name} ({change['code']})", ok and change["code"] in codes)

    def read_prometheus(self) -> None:
        self.step("12. GPU allocation, GPU-hours and decisions, read back from Prometheus")
        assert self.prometheus is not None
        prom = self.prometheus
        queries = {
            "GPUs allocated by region": "sum by (region) (sovereign_gpu_allocated)",
            "GPU-hours by region": "sum by (region) (sovereign_gpu_hours_total)",
            "admission decisions": "sum by (point, decision) (sovereign_policy_decisions_total)",
            "serving requests": "sum by (region, decision) (sovereign_requests_total)",
        }
        for title, expr in queries.items():
            rows = self.wait(f"Prometheus: {expr}", lambda e=expr: prom.query(e), 60)
            shown = ", ".join(
                f"{'/'.join(str(v) for v in row['metric'].values()) or 'total'}={float(row['value'][1]):.3g}"
                for row in rows
            )
            self.say(f"{title}: {shown}")
            self.expect(f"Prometheus has {title}", bool(rows))

    # --- the whole run -------------------------------------------------------------------------------
    def run(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        # The control planes are new each run, so the stacks' Pulumi state must be too.
        shutil.rmtree(pulumi_dir(), ignore_errors=True)
        (self.root / "demo.json").write_text(
            json.dumps({"pid": os.getpid(), "regions": [r.plan.region for r in self.regions]})
        )
        for step in (
            self.build_models,
            self.start_control_planes,
            self.start_prometheus,
            self.deploy_stacks,
            self.start_operators,
            self.start_data_planes,
            self.summarise,
            self.sample_requests,
            self.cluster_requests,
            self.write_matrix,
            self.change_policy,
            self.read_prometheus,
        ):
            step()

    def endpoints(self) -> None:
        self.step("The demo is up")
        for region in self.regions:
            self.say(f"[{region.plan.region}] KUBECONFIG={region.kubeconfig}  OPA {region.opa_url}")
            for deployment in region.plan.deployments:
                self.say(f"    {deployment.model}: {region.endpoint(deployment.name)}")
        if self.prometheus:
            self.say(
                f"Prometheus {self.prometheus.url}   try: sovereign top --prometheus {self.prometheus.url}"
            )
        if self.matrix_html:
            self.say(f"compliance matrix: {self.matrix_html}")
        self.say(f"kubectl --kubeconfig {self.regions[0].kubeconfig} get llamadeployments -A")
        self.say("stop everything: make demo-down (or Ctrl-C here)")

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self.prometheus:
            self.prometheus.stop()
        for region in self.regions:
            lifecycle.down(region.plan.region, progress=lambda _line: None)
        (self.root / "demo.json").unlink(missing_ok=True)


def demo_processes(root: Path) -> list[psutil.Process]:
    """Every process the demo started, directly or not, still alive."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        environ = proc.info["environ"] or {}
        cmdline = proc.info["cmdline"] or []
        mine = environ.get(MEMBER_ENV) == str(root) or any(str(root) in arg for arg in cmdline)
        if mine and proc.pid != os.getpid():
            found.append(proc)
    return found


def down(progress: Callable[[str], None]) -> list[int]:
    """Stop a running demo and everything it started; return the PIDs that had to be killed."""
    root = demo_root()
    try:
        state = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        state = {"pid": None, "regions": [plan.region for plan in REGIONS]}
    if state.get("pid") and psutil.pid_exists(state["pid"]):
        progress(f"stopping the demo (pid {state['pid']})")
        os.kill(state["pid"], signal.SIGTERM)
        try:
            psutil.Process(state["pid"]).wait(timeout=120)
        except psutil.TimeoutExpired:
            os.kill(state["pid"], signal.SIGKILL)
    for region in state["regions"]:
        lifecycle.down(region, progress=progress)
    leftovers = demo_processes(root)
    for proc in leftovers:
        proc.kill()
    (root / "demo.json").unlink(missing_ok=True)
    return [proc.pid for proc in leftovers]
