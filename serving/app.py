"""`serving.app:build_app`: the import path every RayService's serveConfigV2 names for sovereign serving.

No `from __future__ import annotations` here: Ray Serve reads the builder's parameter annotation to
validate the config's `args` into ServingArgs, so a bad config fails its deploy with pydantic's message.
"""

from ray.serve import Application
from ray.serve.deployment import Deployment

from serving.args import IMPORT_PATH, ServingArgs
from serving.ingress import OpenAiIngress
from serving.llm import LlamaServer

__all__ = ["IMPORT_PATH", "build_app", "build_with_ingress"]


def server_name(model_id: str) -> str:
    """The model deployment's name, which a config's `deployments[]` uses to override its options."""
    return f"LlamaServer-{model_id}"


def build_with_ingress(args: ServingArgs, ingress: Deployment) -> Application:
    """The app around a given ingress (the benchmark builds an unguarded twin); build_app is served."""
    servers = [
        LlamaServer.options(
            name=server_name(config.model_loading_config.model_id), **config.deployment_config.options()
        ).bind(
            config.model_loading_config.model_id,
            str(config.model_loading_config.model_source),
            config.engine_kwargs.model_dump(),
            args.policy.model_dump(mode="json"),
        )
        for config in args.llm_configs
    ]
    return ingress.bind(args.model_dump(mode="json"), servers)


def build_app(args: ServingArgs) -> Application:
    return build_with_ingress(args, OpenAiIngress)
