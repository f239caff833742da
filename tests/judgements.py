"""Decision documents as an engine returns them, for tests that act on a judgement without asking one."""

from __future__ import annotations

from typing import Any


def decision(allow: bool, *codes: str) -> dict[str, Any]:
    """An engine's decision: `allow`, one violation per code (message `<code> message`), revision r1."""
    violations = [{"code": c, "message": f"{c} message", "citation": "cite"} for c in codes]
    return {
        "allow": allow,
        "violations": violations,
        "obligations": [],
        "policy_revision": "r1",
        "engine": "x",
    }
