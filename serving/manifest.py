"""A RayService manifest whose serveConfigV2 runs `serving.app:build_app`: one place that writes it,
for the operator, the local demo and the tests alike."""

from __future__ import annotations

from typing import Any

import yaml

from serving.args import IMPORT_PATH, ServingArgs
from sovereign import yamldoc
from sovereign.vocabulary import RAY_API_VERSION, RAY_SERVICE

RAY_IMAGE = "rayproject/ray:2.60.0-py311"
# libyaml's safe dumper where PyYAML was built with it, as sovereign.yamldoc reads: the same documents as
# the pure-Python one at a seventh of the cost, which admission pays on every RayService it reviews.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_serve_config(text: str) -> Any:
    """A serveConfigV2 string as data (yaml.YAMLError when it is not YAML)."""
    return yamldoc.safe_load(text)


def dump_serve_config(config: dict[str, Any], sort_keys: bool = True) -> str:
    """The serveConfigV2 string of `config`."""
    return yaml.dump(config, Dumper=_DUMPER, sort_keys=sort_keys)


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
    """The RayService object: serveConfigV2 as a YAML string, and a one-node RayCluster for KubeRay."""
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
