"""The policy decision for the LlamaDeployments a stack declares, shared by the program and the policy pack.

Objects become decision inputs only through `operators.manifests.decision_input` (the one mapping); the
facts it needs besides the LlamaDeployment itself travel with it as its `policy_context`.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from operators import manifests
from sovereign.policy.engine import PolicyEngine, engine_from_env
from sovereign.policy.screening import ScreeningList

SCREENING_LIST_ENV = "SOVEREIGN_SCREENING_LIST"


def policy_context(cluster: dict[str, Any], deployments: list[dict[str, Any]], index: int) -> dict[str, Any]:
    """What deciding on `deployments[index]` needs: its SovereignCluster, and the GPUs its siblings hold."""
    in_use = sum(manifests.deployment_gpus(d) for i, d in enumerate(deployments) if i != index)
    return {"cluster": cluster, "gpusInUse": in_use}


@cache
def _screening() -> ScreeningList | None:
    path = os.environ.get(SCREENING_LIST_ENV)
    return ScreeningList.load(Path(path)) if path else None


def policy_input(deployment: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The document the policy evaluates for one LlamaDeployment (BadInput when it cannot be judged)."""
    inp = manifests.decision_input(context["cluster"], deployment, gpus_in_use=int(context["gpusInUse"]))
    screening = _screening()
    return inp.policy_input(screening.screen(inp.cluster.operator.name) if screening else [])


@cache
def engine() -> PolicyEngine:
    return engine_from_env()


@cache
def _decide(inp_json: str) -> dict[str, Any]:
    return engine().decide(json.loads(inp_json))


def decide(inp: dict[str, Any]) -> dict[str, Any]:
    """One decision per distinct input per process: several policies of the pack ask about the same input."""
    return _decide(json.dumps(inp, sort_keys=True))


def decide_many(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return engine().decide_many(inputs) if inputs else []


def summary(decision: dict[str, Any]) -> dict[str, Any]:
    """What the stack output shows per deployment: allowed or not, and every code."""
    return {
        "allowed": decision["allow"] is True,
        "violations": [v["code"] for v in decision["violations"]],
        "obligations": [o["code"] for o in decision["obligations"]],
        "policyRevision": decision.get("policy_revision"),
    }
