"""Gather a region's evidence into a signed pack (sovereign.evidence.pack)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from operators.sovereign_operator.weights_mounts import WeightsMounts
from sovereign.audit import keys
from sovereign.audit.index import INDEX_FILE
from sovereign.audit.location import existing_log_dir
from sovereign.audit.query import Query, read_records
from sovereign.audit.segment import HEADS_SUFFIX, LOG_SUFFIX, segments_in
from sovereign.errors import BadInput
from sovereign.evidence import pack
from sovereign.evidence.live import RegionState
from sovereign.evidence.mlbom import ml_bom
from sovereign.matrix.grid import compute_matrix, load_clusters
from sovereign.matrix.html_page import render_html
from sovereign.matrix.markdown import render_markdown
from sovereign.models.signing import carried_signatures
from sovereign.policy.bundle import REVISIONS, SignedBundle, configured_bundle, kept_revision
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
    if (index := log_dir / INDEX_FILE).exists():  # every packed segment is listed there
        members[f"{pack.LOG_PREFIX}{INDEX_FILE}"] = index.read_bytes()
    return members, records


def _policy_members(members: dict[str, bytes], bundle: SignedBundle) -> dict[str, bytes]:
    """The signed bundle of every revision a packed record names, and of the one in force: each from the
    bundle folder's kept revisions (sovereign.policy.bundle.keep_revision). BadInput naming the revisions
    no longer kept: a pack without them could not show what those decisions were judged against."""
    folder = bundle.rego.parent
    wanted = pack.revisions_named(members) | {bundle.revision: "the bundle in force"}
    found = {
        revision: bundle.rego if revision == bundle.revision else kept_revision(folder, revision)
        for revision in wanted
    }
    if missing := sorted(revision for revision, path in found.items() if not path.is_file()):
        raise BadInput(
            f"{folder} no longer keeps policy revision(s) {', '.join(missing)} (named first by record "
            f"{', '.join(wanted[revision] for revision in missing)}): restore each revision's signed "
            f"bundle.tar.gz under {folder / REVISIONS}/<revision>/"
        )
    return {pack.policy_bundle(revision): path.read_bytes() for revision, path in sorted(found.items())}


def _signature_members(checkpoints: dict[str, tuple[Path, str | None]]) -> dict[str, bytes]:
    """Each readable checkpoint's model.sig and its signer's public key, listed per deployment."""
    carried = carried_signatures(
        {deployment: folder for deployment, (folder, _) in checkpoints.items()},
        {signer for _, signer in checkpoints.values() if signer is not None},
    )
    members, rows = {}, []
    for deployment, (_, signer) in sorted(checkpoints.items()):
        row: dict[str, Any] = {"deployment": deployment, "signer": signer, "signature": None, "key": None}
        if (signature := carried.signatures.get(deployment)) is not None:
            row["signature"] = pack.weights_signature(deployment)
            members[row["signature"]] = signature.read_bytes()
        if signer is not None and (key := carried.signers.get(signer)) is not None:
            row["key"] = pack.signer_key(signer)
            members[row["key"]] = key.read_bytes()
        rows.append(row)
    return {**members, pack.WEIGHTS_SIGNATURES: pack.as_json(rows)}


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
    weights_mounts: WeightsMounts | None = None,
    key: Ed25519PrivateKey | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """Write `region`'s evidence pack to `out`; returns its manifest facts. BadInput (naming the fix) when
    the log, the bundle, the audit key or the region's cluster files are missing. `state` (default: read
    from the region's API server) and `key` (default: the audit key) are given by the benchmark.
    `weights_mounts` (the operator's --weights-mount) is where the deployed checkpoints are readable here:
    their signatures are packed only from there."""
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
    checkpoints = state.checkpoints(weights_mounts or WeightsMounts())
    progress(
        f"weights signatures of {len(checkpoints)} of {len(state.deployments)} deployments' checkpoints"
        + ("" if weights_mounts and weights_mounts.mounts else " (no --weights-mount: none readable here)")
    )
    members |= {
        **_policy_members(members, bundle),
        pack.DECISIONS: pack.as_json(_decisions(records)),
        pack.WEIGHTS: pack.as_json(weights),
        **_signature_members(checkpoints),
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
        "policy_revision": bundle.revision,  # in force at export; each record names its own
        "audit_key_id": keys.key_id(key.public_key()),
        "records": len(records),
    }
    pack.write(out, members, facts, key)
    progress(
        f"evidence pack: {out} ({len(members) + 2} members, signed with audit key {facts['audit_key_id']})"
    )
    return facts
