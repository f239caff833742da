"""The operator's policy engines: the project's engine, with a timeout that fits a whole-fleet batch.

`engine_from_env()` gives the OPA server a 2 s timeout, right for one decision; the OPA server takes
about 2 ms per item of a batch, so re-judging thousands of deployments in one query needs longer.
A timeout is still a deny (the engine fails closed), and the drift pass then holds everything as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sovereign.policy.engine import PolicyEngine, engine_from_env
from sovereign.policy.rest_engine import RestEngine

OPA_URL_ENV = "SOVEREIGN_OPA_URL"


@dataclass(frozen=True)
class Engines:
    single: PolicyEngine  # admission and one deployment at a time
    batch: PolicyEngine  # the drift pass and cluster-wide re-judging


def engines_from_env(batch_timeout_s: float) -> Engines:
    single = engine_from_env()
    url = os.environ.get(OPA_URL_ENV)
    # The in-process Wasm engine has no network to wait on: one instance serves both.
    return Engines(single, RestEngine(url, timeout_s=batch_timeout_s) if url else single)
