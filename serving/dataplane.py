"""The local data plane: RayServices served on a local Ray, the stand-in for KubeRay and the kubelet.

`DataPlane.reconcile(objects)` is level-triggered, like a controller: from the RayService objects it is
given it works out the applications to serve (suspended, invalid and deleted services have none),
applies them to the local Serve as ONE config when they changed, and returns each object's status in
KubeRay's shape. `watch()` feeds it every RayService in the API server and writes the statuses back;
`sovereign serve --local FILE` feeds it one file's RayService.

The Serve config is applied the way `serve run config.yaml` does it (serve_start + deploy_apps), because
the dashboard that KubeRay PUTs configs to is not started here (it costs a core we do not have).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from serving import fatal_signals
from serving.args import IMPORT_PATH, LLMConfig, ServingArgs
from serving.rayservice import (
    DesiredService,
    InvalidServeConfig,
    RayServiceKey,
    deploy_config,
    desired_service,
    is_suspended,
    key_of,
    service_status,
    stamp,
    unchanged,
)
from sovereign import vocabulary as k8s

Progress = Callable[[str], None]
GROUP, VERSION, PLURAL = k8s.RAY_GROUP, k8s.RAY_VERSION, k8s.RAYSERVICES
START_TRIES = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# What Ray and Serve raise when a start missed their fixed deadlines (not a configuration error).
_SLOW_START = ("timed out during startup", "HTTP proxies not available")


def slow_start(exc: BaseException) -> bool:
    """Whether `exc` says only that Ray or Serve started too slowly, so a fresh start may make it."""
    return any(sign in str(exc) for sign in _SLOW_START)


@dataclass
class LocalRay:
    """One local Ray with Serve on loopback; sized small, with no dashboard and no usage reporting."""

    num_cpus: int = 2
    # GPUs the local node advertises to Ray's scheduler, so replicas sized for GPUs are placed; without
    # real devices they run on CPU (the model deployment picks its device at start).
    num_gpus: int = 0
    host: str = "127.0.0.1"
    http_port: int = 8000
    metrics_port: int = field(default_factory=free_port)
    _fatal_handlers: fatal_signals.Handlers = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> None:
        import ray
        from ray.serve._private.api import serve_start

        self._fatal_handlers = fatal_signals.current()  # Ray replaces them: see serving/fatal_signals.py
        # Sovereign deployments send nothing out: Ray's usage statistics stay off.
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        for attempt in range(1, START_TRIES + 1):
            try:
                ray.init(
                    num_cpus=self.num_cpus,
                    num_gpus=self.num_gpus,
                    include_dashboard=False,
                    namespace="serve",
                    _metrics_export_port=self.metrics_port,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
                self._client = serve_start(http_options={"host": self.host, "port": self.http_port})
                break
            except Exception as exc:
                # Ray gives its raylet 30 s to register and Serve its HTTP proxy 60 s, both fixed, which a
                # busy machine (load above 20 on two cores, seen here) misses; a new start usually makes it.
                if not slow_start(exc) or attempt == START_TRIES:
                    raise
                ray.shutdown()
        fatal_signals.restore(self._fatal_handlers)

    def apply(self, services: list[DesiredService]) -> None:
        """Hand Serve the whole desired config (an empty one removes every app); Serve converges to it."""
        self._client.deploy_apps(deploy_config(services, self.host, self.http_port))

    def applications(self) -> dict[str, dict[str, Any]]:
        """Every application Serve runs: {name: {status, message, deployments: {name: {status, message}}}}."""
        from ray import serve

        return {
            name: {
                "status": str(app.status.value),
                "message": app.message,
                "deployments": {
                    dep_name: {"status": str(dep.status.value), "message": dep.message}
                    for dep_name, dep in app.deployments.items()
                },
            }
            for name, app in serve.status().applications.items()
        }

    def stop(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        fatal_signals.restore(self._fatal_handlers)


def _stand_ins() -> str:
    from sovereign.models.tiny import TINY_MODELS

    return " and ".join(model.stands_in_for for model in TINY_MODELS)


def _llm_configs(service: DesiredService) -> list[LLMConfig]:
    """The models of the service's sovereign apps (another builder's needs only Serve knows)."""
    return [
        config
        for app in service.applications
        if app.get("import_path") == IMPORT_PATH
        for config in ServingArgs.model_validate(app.get("args") or {}).llm_configs
    ]


def _gpus(service: DesiredService) -> float:
    """The GPUs its replicas ask Ray for, all together."""
    total = 0.0
    for config in _llm_configs(service):
        options = config.deployment_config
        replicas = options.num_replicas if isinstance(options.num_replicas, int) else 1
        total += float((options.ray_actor_options or {}).get("num_gpus") or 0) * replicas
    return total


def _unservable(service: DesiredService, advertised: float, taken: float) -> tuple[str, str] | None:
    """(reason, message naming the fix) when this local Ray cannot place the service's replicas (GPUs
    beyond what it advertises, `taken` of them by services placed before it) or load its weights (no
    checkpoint at model_source); None when it can. Deployed anyway, it would wait for resources or fail
    its replicas, with requests hanging in Serve's queue and nothing on the console."""
    problems = []
    if (gpus := _gpus(service)) > advertised - taken:
        held = f", {taken:g} of them taken by the services placed before it" if taken else ""
        problems.append(
            (
                k8s.RAY_REASON_UNSCHEDULABLE,
                f"cannot place it: its replicas ask for {gpus:g} GPUs and this local Ray advertises "
                f"{advertised:g}{held}: restart `sovereign serve` with --num-gpus {taken + gpus:g}",
            )
        )
    for config in _llm_configs(service):
        model, source = config.model_loading_config.model_id, config.model_loading_config.model_source
        if not source.is_dir():
            problems.append(
                (
                    k8s.RAY_REASON_WEIGHTS_NOT_FOUND,
                    f"the weights of {model} are not at {source}: put its checkpoint there, or point the "
                    "deployment's weights path at one (spec.weights.path; a cluster file's "
                    "deployments[].weights); `sovereign models build` builds tiny stand-ins for "
                    f"{_stand_ins()}",
                )
            )
    if not problems:
        return None
    return problems[0][0], "; ".join(message for _, message in problems)


@dataclass
class DataPlane:
    ray: LocalRay
    progress: Progress = print
    _applied: str | None = None
    _weights: dict[RayServiceKey, list[dict[str, Any]]] = field(default_factory=dict)
    _shown: dict[RayServiceKey, str] = field(default_factory=dict)  # each service's Ready line, last printed

    def endpoint(self, service: DesiredService) -> str:
        return self.ray.url + service.key.route_prefix

    def reconcile(self, objects: list[dict[str, Any]]) -> dict[RayServiceKey, dict[str, Any]]:
        """Serve what the objects ask for and this Ray can place and load; the status (without timestamps)
        of each object. Each service's Ready condition is printed when it changes."""
        desired: dict[RayServiceKey, DesiredService] = {}
        refused: dict[RayServiceKey, tuple[str, str]] = {}
        taken = 0.0
        for obj in sorted(objects, key=lambda o: str(key_of(o))):
            if is_suspended(obj):
                continue
            try:
                service = desired_service(obj)
            except InvalidServeConfig as exc:
                refused[key_of(obj)] = (k8s.RAY_REASON_VALIDATION_FAILED, str(exc))
                continue
            if unservable := _unservable(service, self.ray.num_gpus, taken):
                refused[service.key] = unservable
                continue
            taken += _gpus(service)
            desired[service.key] = service
        fingerprint = ",".join(f"{key}={desired[key].fingerprint}" for key in sorted(desired, key=str))
        if fingerprint != self._applied:
            self.ray.apply([desired[key] for key in sorted(desired, key=str)])
            self._applied = fingerprint
            self._weights = {key: w for key, w in self._weights.items() if key in desired}
            for service in desired.values():
                self.progress(f"{service.key}: serving at {self.endpoint(service)}/v1 (metrics: /metrics)")
        running = self.ray.applications()
        statuses = {}
        for obj in objects:
            key = key_of(obj)
            service = desired.get(key)
            apps = {name: running[name] for name in service.routes if name in running} if service else None
            status = service_status(obj, apps, refused.get(key), self._weights_of(service, apps))
            statuses[key] = status
        self._report(statuses)
        return statuses

    def _report(self, statuses: dict[RayServiceKey, dict[str, Any]]) -> None:
        for key, status in statuses.items():
            ready = next(c for c in status["conditions"] if c["type"] == k8s.RAY_CONDITION_READY)
            line = f"{key}: Ready={ready['status']} ({ready['reason']}) {ready['message']}".rstrip()
            if self._shown.get(key) != line:
                self._shown[key] = line
                self.progress(line)
        for gone in set(self._shown) - set(statuses):
            del self._shown[gone]

    def _weights_of(
        self, service: DesiredService | None, apps: dict[str, dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """The verified weights records of a running service, fetched once from its ingress."""
        if service is None or not apps or any(a["status"] != "RUNNING" for a in apps.values()):
            return None
        if service.key not in self._weights:
            records = []
            for route in service.routes.values():
                try:
                    reply = requests.get(f"{self.ray.url}{route}/sovereign/weights", timeout=10)
                    reply.raise_for_status()
                except requests.RequestException:
                    return None  # an app that is not ours, or not answering yet: try again next time
                records.extend(reply.json().get("data", []))
            self._weights[service.key] = records
        return self._weights[service.key]


def load_rayservice_file(path: Path) -> dict[str, Any]:
    """The one RayService in a YAML file; BadInput naming the problem otherwise."""
    import yaml

    from sovereign.errors import BadInput

    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: malformed YAML: {exc}") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise BadInput(f"{path}: expected exactly one RayService object, found {len(docs)} documents")
    obj = docs[0]
    if obj.get("kind") != k8s.RAY_SERVICE or not str(obj.get("apiVersion", "")).startswith(f"{GROUP}/"):
        raise BadInput(
            f"{path}: kind is {obj.get('kind')!r} ({obj.get('apiVersion')!r}): "
            f"expected kind {k8s.RAY_SERVICE}, apiVersion {GROUP}/{VERSION}"
        )
    if not key_of(obj).name:
        raise BadInput(f"{path}: metadata.name is missing: name the RayService")
    try:
        desired_service(obj)
    except InvalidServeConfig as exc:
        raise BadInput(f"{path}: {exc}") from None
    return obj


def _write_status(api: Any, obj: dict[str, Any], status: dict[str, Any]) -> None:
    old = obj.get("status") or {}
    if unchanged(status, old):
        return
    new = stamp(status, old)
    # A merge patch keeps fields it does not name: name the ones that went away as null.
    body = {"status": {**{k: None for k in old if k not in new}, **new}}
    key = key_of(obj)
    api.patch_namespaced_custom_object_status(GROUP, VERSION, key.namespace, PLURAL, key.name, body)


def watch(
    plane: DataPlane,
    kubeconfig: Path,
    stop: threading.Event,
    interval_s: float = 1.0,
) -> None:
    """Serve every RayService in the API server until `stop` is set; write each one's status back."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    while not stop.is_set():
        try:
            objects = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            statuses = plane.reconcile(objects)
            for obj in objects:
                _write_status(api, obj, statuses[key_of(obj)])
        except Exception as exc:  # like a controller: report, and try again on the next pass
            if not (isinstance(exc, client.ApiException) and exc.status == 404):  # 404: deleted meanwhile
                plane.progress(f"reconcile failed, retrying: {type(exc).__name__}: {exc}")
        stop.wait(interval_s)
