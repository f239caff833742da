"""Where the decision log lives: $SOVEREIGN_AUDIT_DIR, else the state dir's audit/ folder."""

from __future__ import annotations

import os
from pathlib import Path

from sovereign.audit.segment import HEADS_SUFFIX, LOG_SUFFIX, segments_in
from sovereign.errors import BadInput
from sovereign.state_dir import state_root

AUDIT_DIR_ENV = "SOVEREIGN_AUDIT_DIR"


def audit_dir() -> Path:
    if explicit := os.environ.get(AUDIT_DIR_ENV):
        return Path(explicit)
    return state_root() / "audit"


def existing_log_dir(directory: Path | None) -> Path:
    """`directory` (default: the configured one) when it holds a segment; BadInput naming the fix else."""
    folder = directory or audit_dir()
    if not folder.is_dir():
        raise BadInput(
            f"no decision log at {folder}: pass the folder the writers log to, or set {AUDIT_DIR_ENV} "
            f"(default: the state dir's audit/)"
        )
    if not segments_in(folder):
        raise BadInput(
            f"{folder} holds no log segment (*{LOG_SUFFIX}, *{HEADS_SUFFIX}): is it the log folder?"
        )
    return folder
