"""RayService objects as the local data plane sees them: their Serve config, placed on one shared local
Ray, and the status written back in KubeRay's shape.

KubeRay gives each RayService its own RayCluster; locally they share one Ray, so each application is
renamed `<namespace>.<name>.<app>` and mounted under `/<namespace>/<name>` on the one Serve proxy, and
the Serve config of every served RayService is applied as one, as KubeRay's PUT to the dashboard does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from serving.args import IMPORT_PATH, ServingArgs
from serving.manifest import load_serve_config
from sovereign import vocabulary as k8s
from sovereign.policy.decision_input import describe_errors

# Serve application status -> whether the app counts as serving, as KubeRay reads it.
_RUNNING = "RUNNING"


class InvalidServeConfig(ValueError):
    """The RayService's serveConfigV2 cannot be applied: the message names the field and the fix."""


@dataclass(frozen=True)
class RayServiceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def app_prefix(self) -> str:
        return f"{self.namespace}.{self.name}."

    @property
    def route_prefix(self) -> str:
        return f"/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DesiredService:
    key: RayServiceKey
    generation: int
    applications: list[dict[str, Any]]  # already renamed and re-routed for the shared local Ray
    routes: dict[str, str]  # local app name -> route prefix

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.applications, sort_keys=True).encode()).hexdigest()


def key_of(obj: dict[str, Any]) -> RayServiceKey:
    meta = obj.get("metadata") or {}
    return RayServiceKey(str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def is_suspended(obj: dict[str, Any]) -> bool:
    """KubeRay v1.5.1's RayService has no spec.suspend (later versions do): the switch is its RayCluster's
    spec.rayClusterConfig.suspend. Either one suspends."""
    spec = obj.get("spec") or {}
    return spec.get("suspend") is True or (spec.get("rayClusterConfig") or {}).get("suspend") is True


def _check_sovereign_args(app: dict[str, Any], where: str) -> None:
    # The builder validates its args again when Serve builds the app; checking here too turns a typo
    # into a ValidationFailed status (or exit 2 from the CLI) instead of an app stuck in DEPLOY_FAILED.
    if app.get("import_path") != IMPORT_PATH:
        return
    try:
        ServingArgs.model_validate(app.get("args") or {})
    except ValidationError as exc:
        raise InvalidServeConfig(
            f"{where}.args is not valid for {IMPORT_PATH}\n{describe_errors(exc, f'{where}.args')}"
        ) from None


def desired_service(obj: dict[str, Any]) -> DesiredService:
    """The applications a (non-suspended) RayService asks for, ready for the shared local Ray."""
    key = key_of(obj)
    spec = obj.get("spec") or {}
    raw = spec.get("serveConfigV2")
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidServeConfig(
            f"{key}: spec.serveConfigV2 is missing: add the Serve config (a YAML string)"
        )
    try:
        config = load_serve_config(raw)
    except yaml.YAMLError as exc:
        raise InvalidServeConfig(f"{key}: spec.serveConfigV2 is not valid YAML: {exc}") from None
    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        problems = describe_errors(exc, "spec.serveConfigV2")
        raise InvalidServeConfig(f"{key}: spec.serveConfigV2 is not a Serve config\n{problems}") from None
    if not schema.applications:
        raise InvalidServeConfig(f"{key}: spec.serveConfigV2.applications is empty: add an application")
    applications, routes = [], {}
    for index, app in enumerate(config["applications"]):
        _check_sovereign_args(app, f"{key}: spec.serveConfigV2.applications[{index}]")
        local_name = key.app_prefix + str(app.get("name", "default"))
        route = key.route_prefix + (app.get("route_prefix") or "/").rstrip("/")
        applications.append({**app, "name": local_name, "route_prefix": route})
        routes[local_name] = route
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    return DesiredService(key, generation, applications, routes)


def deploy_config(services: list[DesiredService], host: str, port: int) -> ServeDeploySchema:
    """One Serve config holding every service's applications: applying it removes all others."""
    return ServeDeploySchema.model_validate(
        {
            "http_options": {"host": host, "port": port},
            "applications": [app for service in services for app in service.applications],
        }
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def service_status(
    obj: dict[str, Any],
    applications: dict[str, dict[str, Any]] | None,
    refused: tuple[str, str] | None = None,
    weights: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The RayService status as KubeRay reports one (without timestamps: see stamp()).

    `applications` maps each of the service's local app names to {status, message, deployments:
    {name: {status, message}}}, as Serve reports them; None when the service is not deployed. `refused`,
    (reason, message), says why it is not: its config is invalid, or it cannot be placed or loaded here.
    """
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    conditions = []
    app_statuses: dict[str, Any] = {}
    prefix = key_of(obj).app_prefix
    for local_name, app in sorted((applications or {}).items()):
        app_statuses[local_name.removeprefix(prefix)] = {
            "status": app["status"],
            "message": app.get("message", ""),
            "serveDeploymentStatuses": {
                name: {"status": dep["status"], "message": dep.get("message", "")}
                for name, dep in sorted(app.get("deployments", {}).items())
            },
        }
    ready = bool(app_statuses) and all(a["status"] == _RUNNING for a in app_statuses.values())

    def condition(kind: str, status: bool, reason: str, message: str) -> None:
        conditions.append(_condition(kind, status, reason, message, generation))

    if is_suspended(obj):
        condition(k8s.RAY_CONDITION_READY, False, k8s.RAY_REASON_SUSPENDED, "the RayService is suspended")
        condition(
            k8s.RAY_CONDITION_SUSPENDED, True, k8s.RAY_REASON_SUSPEND_COMPLETE, "removed from the local Ray"
        )
    elif refused is not None:
        condition(k8s.RAY_CONDITION_READY, False, *refused)
    elif ready:
        condition(k8s.RAY_CONDITION_READY, True, k8s.RAY_REASON_SERVING, "every application is RUNNING")
    else:
        failing = [
            " ".join(
                [f"{name}: {app['status']} {app['message']}".strip()]
                + [
                    f"{dep_name}: {dep['status']} {dep['message']}".strip()
                    for dep_name, dep in app["serveDeploymentStatuses"].items()
                    if dep["status"] != "HEALTHY"
                ]
            )
            for name, app in app_statuses.items()
            if app["status"] != _RUNNING
        ]
        waiting = "; ".join(failing) or "waiting for the local Ray to deploy"
        condition(k8s.RAY_CONDITION_READY, False, k8s.RAY_REASON_INITIALIZING, waiting)
    condition(k8s.RAY_CONDITION_UPGRADE_IN_PROGRESS, False, k8s.RAY_REASON_NO_PENDING_CLUSTER, "")
    if weights:
        lines = [f"{w['model_id']}: {f['name']} sha256={f['sha256']}" for w in weights for f in w["files"]]
        condition(k8s.CONDITION_WEIGHTS_VERIFIED, True, k8s.REASON_DIGESTS_RECORDED, "\n".join(lines))
    status: dict[str, Any] = {
        "conditions": conditions,
        "observedGeneration": generation,
        "numServeEndpoints": 1 if ready else 0,
        "serviceStatus": k8s.RAY_SERVICE_STATUS_RUNNING if ready else "",
    }
    if applications is not None:
        status["activeServiceStatus"] = {"applicationStatuses": app_statuses, "rayClusterName": "local"}
    return status


def stamp(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Add lastUpdateTime and each condition's lastTransitionTime, keeping a condition's time while its
    status is unchanged (the metav1.Condition rule)."""
    old_conditions = {c.get("type"): c for c in (old or {}).get("conditions") or []}
    now = _now()
    conditions = []
    for condition in new["conditions"]:
        previous = old_conditions.get(condition["type"])
        same = previous is not None and previous.get("status") == condition["status"]
        conditions.append(
            {**condition, "lastTransitionTime": previous["lastTransitionTime"] if same else now}
        )
    return {**new, "conditions": conditions, "lastUpdateTime": now}


def unchanged(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Whether writing `new` would change anything but timestamps (status is written only on change)."""

    def strip(status: dict[str, Any] | None) -> dict[str, Any]:
        status = dict(status or {})
        status.pop("lastUpdateTime", None)
        status["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
        ]
        return status

    return strip(new) == strip(old)
