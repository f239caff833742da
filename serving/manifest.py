"""A RayService manifest whose serveConfigV2 runs `serving.app:build_app`: one place that writes it,
for the operator, the local demo and the tests alike."""

from __future__ import annotations

import json
from typing import Any

from serving.args import IMPORT_PATH, ServingArgs
from sovereign import yamldoc
from sovereign.vocabulary import RAY_API_VERSION, RAY_SERVICE

RAY_IMAGE = "rayproject/ray:2.60.0-py311"


def load_serve_config(text: str) -> Any:
    """A serveConfigV2 string as data (yaml.YAMLError when it is not YAML). JSON, as written here, is read
    by `json`, a tenth of PyYAML's cost even with libyaml (its objects are built in Python), which admission
    and the operator pay on every RayService; anything else (YAML a person wrote) by the YAML reader."""
    try:
        return json.loads(text)
    except ValueError:
        return yamldoc.safe_load(text)


def dump_serve_config(config: dict[str, Any], sort_keys: bool = True) -> str:
    """The serveConfigV2 string of `config`: JSON, which is YAML, so KubeRay's YAML reader (and anyone's)
    reads it as it reads YAML; written and read back at a fraction of PyYAML's cost (`load_serve_config`)."""
    return json.dumps(config, sort_keys=sort_keys)


def serve_config(
    args: ServingArgs, app_name: str = "llm", runtime_env: dict[str, Any] | None = None
) -> dict[str, Any]:
    app: dict[str, Any] = {
        "name": app_name,
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "args": args.model_dump(mode="json", exclude_defaults=True),
    }
    if runtime_env:
        app["runtime_env"] = runtime_env
    return {"applications": [app]}


def rayservice(
    namespace: str,
    name: str,
    args: ServingArgs,
    runtime_env: dict[str, Any] | None = None,
    image: str = RAY_IMAGE,
) -> dict[str, Any]:
    """The RayService object: serveConfigV2 as a YAML (JSON) string, and a one-node RayCluster for KubeRay."""
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": RAY_SERVICE,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serveConfigV2": dump_serve_config(serve_config(args, runtime_env=runtime_env), sort_keys=False),
            "rayClusterConfig": {
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "2"},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": image}]}},
                }
            },
        },
    }
