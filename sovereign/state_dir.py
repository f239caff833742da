"""The user's state folder, shared by the policy core and the local dev environment."""

from __future__ import annotations

import os
from pathlib import Path


def state_root() -> Path:
    if explicit := os.environ.get("SOVEREIGN_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sovereign"
