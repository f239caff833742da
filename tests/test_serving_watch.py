"""`sovereign serve --watch` against the real API server with KubeRay's CRDs: RayServices are served on
the local Ray, their status is written back the way KubeRay writes it, suspend and delete take effect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config

from serving.args import ServingArgs
from serving.dataplane import DataPlane, LocalRay, free_port, watch
from serving.manifest import rayservice
from sovereign import toolchain
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig, running_controlplane
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"
MODEL = "llama-3.1-8b-instruct"
SUSPEND = {"spec": {"rayClusterConfig": {"suspend": True}}}  # KubeRay v1.5.1's switch
RESUME = {"spec": {"rayClusterConfig": {"suspend": False}}}
PROGRESS: list[str] = []  # what the data plane reported, shown when a wait times out


@pytest.fixture(scope="module")
def plane(signed_bundle: SignedBundle) -> Iterator[DataPlane]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SOVEREIGN_OPA_URL", raising=False)
        ray = LocalRay(num_cpus=2, http_port=free_port())
        ray.start()
        try:
            yield DataPlane(ray, progress=PROGRESS.append)
        finally:
            ray.stop()


@pytest.fixture(scope="module")
def controlplane(
    tmp_path_factory: pytest.TempPathFactory, signed_bundle: SignedBundle
) -> Iterator[ControlPlane]:
    """A control plane of this module's own (its OPA on the session's bundle): the data plane serves every
    RayService it finds, so it must not see those that other modules' operators left in the session's."""
    config = ControlPlaneConfig(
        name="serving-watch", state_dir=tmp_path_factory.mktemp("serving-watch-plane")
    )
    with running_controlplane(config) as plane:
        yield plane


@pytest.fixture(scope="module")
def api(controlplane: ControlPlane) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(controlplane.kubeconfig)))


def _args(source: str) -> ServingArgs:
    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    return ServingArgs.model_validate(
        {
            "llm_configs": [
                {
                    "model_loading_config": {"model_id": MODEL, "model_source": source},
                    "engine_kwargs": {"max_new_tokens": 4},
                    "deployment_config": {"ray_actor_options": {"num_cpus": 0.25}},
                }
            ],
            "policy": {"cluster": cluster.model_dump(), "end_use": "commercial"},
        }
    )


def _until(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; data plane said: {PROGRESS}"
        time.sleep(0.5)
    return found


def _condition(api: client.CustomObjectsApi, name: str, kind: str) -> dict[str, Any] | None:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == kind), None)


def test_watch_serves_reports_suspends_and_removes(
    plane: DataPlane,
    api: client.CustomObjectsApi,
    controlplane: ControlPlane,
    tiny_models: dict[str, Path],
) -> None:
    source = str(tiny_models["tiny-llama-text"])
    good = rayservice("default", "eu-watch", _args(source))
    broken = rayservice("default", "eu-broken", _args(source))
    broken["spec"]["serveConfigV2"] = "applications:\n  - name: llm\n    import_path: [not, a, string]\n"
    unbuilt = rayservice("default", "eu-unbuilt", _args("/models/never-built"))  # no weights: never deployed
    for body in (good, broken, unbuilt):
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)

    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(plane, controlplane.kubeconfig, stop, 0.5), daemon=True)
    thread.start()
    try:
        ready = _until(
            "Ready=True", lambda: (c := _condition(api, "eu-watch", "Ready")) and c["status"] == "True" and c
        )
        assert ready["reason"] == "NonZeroServeEndpoints" and ready["lastTransitionTime"]
        obj = api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu-watch")
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert (
            status["serviceStatus"] == "Running"
            and status["numServeEndpoints"] == 1
            and status["lastUpdateTime"]
        )
        app = status["activeServiceStatus"]["applicationStatuses"]["llm"]
        assert app["status"] == "RUNNING"
        assert _until("weights digests", lambda: _condition(api, "eu-watch", "sovereign.dev/WeightsVerified"))

        endpoint = f"{plane.ray.url}/default/eu-watch/v1/chat/completions"
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert requests.post(endpoint, json=body, timeout=60).status_code == 200

        invalid = _condition(api, "eu-broken", "Ready")
        assert invalid and invalid["status"] == "False" and invalid["reason"] == "ValidationFailed"
        assert "spec.serveConfigV2" in invalid["message"] and "import_path" in invalid["message"]
        refused = _condition(api, "eu-unbuilt", "Ready")
        assert refused and (refused["status"], refused["reason"]) == ("False", "WeightsNotFound")
        assert any(line.startswith("default/eu-unbuilt: Ready=False (WeightsNotFound)") for line in PROGRESS)
        unbuilt_url = f"{plane.ray.url}/default/eu-unbuilt/v1/chat/completions"
        assert requests.post(unbuilt_url, json=body, timeout=10).status_code == 404  # answered, never queued

        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu-watch", SUSPEND)
        suspended = _until("Suspended=True", lambda: _condition(api, "eu-watch", "Suspended"))
        assert (suspended["status"], suspended["reason"]) == ("True", "SuspendComplete")
        _until(
            "the route to go", lambda: requests.post(endpoint, json=body, timeout=60).status_code == 404, 60
        )

        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu-watch", RESUME)
        _until(
            "Ready=True again", lambda: (c := _condition(api, "eu-watch", "Ready")) and c["status"] == "True"
        )
        api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu-watch")
        _until("the deleted service's apps to go", lambda: not plane.ray.applications(), 90)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=30)
        for name in ("eu-broken", "eu-unbuilt"):
            api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
