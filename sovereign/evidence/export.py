"""Gather a region's evidence into a signed pack (sovereign.evidence.pack)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovereign.audit import keys
from sovereign.audit.location import existing_log_dir
from sovereign.audit.query import Query, read_records
from sovereign.audit.segment import HEADS_SUFFIX, LOG_SUFFIX, segments_in
from sovereign.evidence import pack
from sovereign.evidence.live import RegionState
from sovereign.evidence.mlbom import ml_bom
from sovereign.matrix.grid import compute_matrix, load_clusters
from sovereign.matrix.html_page import render_html
from sovereign.matrix.markdown import render_markdown
from sovereign.policy.bundle import configured_bundle
from sovereign.policy.engine import engine_from_env
from sovereign.policy.judgement import Judge
from sovereign.policydata import load_policy_data

Progress = Callable[[str], None]


def _log_members(log_dir: Path, region: str, since: datetime | None) -> tuple[dict[str, bytes], list[Any]]:
    """The segments holding a record of `region` (whole: a record's proof needs its whole segment), and the
    region's records since `since`."""
    records, _ = read_records(log_dir, Query(region=region, since=since))
    wanted = {logged.record_id.rsplit(":", 1)[0] for logged in records}
    members = {}
    for segment in segments_in(log_dir):
        if segment not in wanted:
            continue
        for suffix in (LOG_SUFFIX, HEADS_SUFFIX):
            path = log_dir / f"{segment}{suffix}"
            if path.exists():
                members[f"{pack.LOG_PREFIX}{path.name}"] = path.read_bytes()
    return members, records


def _decisions(records: list[Any]) -> list[dict[str, Any]]:
    """The latest decision about each subject, pointing at its record, with how many were made."""
    latest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for logged in records:  # oldest first
        subject = logged.record.subject
        latest[subject] = logged
        counts[subject] = counts.get(subject, 0) + 1
    return [
        {
            "subject": subject,
            "record_id": logged.record_id,
            "record": logged.record.model_dump(mode="json"),
            "decisions": counts[subject],
        }
        for subject, logged in sorted(latest.items())
    ]


def export_pack(
    region: str,
    out: Path,
    *,
    kubeconfig: Path | None,
    clusters_dir: Path,
    log_dir: Path | None = None,
    since: datetime | None = None,
    today: date | None = None,
    state: RegionState | None = None,
    key: Ed25519PrivateKey | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """Write `region`'s evidence pack to `out`; returns its manifest facts. BadInput (naming the fix) when
    the log, the bundle, the audit key or the region's cluster files are missing. `state` (default: read
    from the region's API server) and `key` (default: the audit key) are given by the benchmark."""
    today = today or datetime.now(UTC).date()
    key = key or keys.load_signing_key()
    bundle = configured_bundle()
    folder = existing_log_dir(log_dir)
    declared = [c for c in load_clusters(clusters_dir) if c.spec.region == region]
    progress(f"decision log {folder}: reading the records of region {region}")
    members, records = _log_members(folder, region, since)
    progress(f"  {len(records)} records in {sum(1 for m in members if m.endswith(LOG_SUFFIX))} segments")
    progress("live state: clusters, deployments, recorded weights digests")
    state = state or RegionState.read(kubeconfig, region)
    data = load_policy_data()
    weights = state.weights()
    members |= {
        pack.POLICY_BUNDLE: bundle.rego.read_bytes(),
        pack.DECISIONS: pack.as_json(_decisions(records)),
        pack.WEIGHTS: pack.as_json(weights),
        pack.ACCREDITATIONS: pack.as_json(state.accreditations(today)),
        pack.ML_BOM: ml_bom(region, state.deployments, weights, data).encode(),
    }
    if declared:
        progress(f"compliance matrix of {len(declared)} declared clusters")
        matrix = compute_matrix(declared, Judge(engine_from_env()), data, today)
        members |= {
            pack.MATRIX_HTML: render_html(matrix).encode(),
            pack.MATRIX_MARKDOWN: render_markdown(matrix).encode(),
        }
    facts = {
        "region": region,
        "since": since.isoformat() if since else None,
        "created": datetime.now(UTC).isoformat(),
        "as_of": today.isoformat(),
        "policy_revision": bundle.revision,
        "audit_key_id": keys.key_id(key.public_key()),
        "records": len(records),
    }
    pack.write(out, members, facts, key)
    progress(
        f"evidence pack: {out} ({len(members) + 2} members, signed with audit key {facts['audit_key_id']})"
    )
    return facts
