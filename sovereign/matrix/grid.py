"""The grid of decisions: declared clusters loaded, every cell's input built, all decided in one batch."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sovereign.errors import BadInput
from sovereign.policy.clusters import ClusterSpec, Deployment, load_cluster
from sovereign.policy.decision_input import DecisionInput, EndUse
from sovereign.policy.judgement import UNDECIDED_CODES, Judge
from sovereign.policy.subjects import declared_inputs, model_input, sovereign_cluster
from sovereign.policydata import PolicyData

END_USES: tuple[str, ...] = tuple(end_use.value for end_use in EndUse)


@dataclass(frozen=True)
class DeclaredCluster:
    path: Path
    spec: ClusterSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summary(self) -> str:
        """The facts a reader needs beside the cluster's cells, on one line."""
        spec, operator = self.spec, self.spec.operator
        placed = f"in {spec.country}" + (
            f" (weights in {spec.weights_country})" if spec.weights_country else ""
        )
        sponsor = f", sponsored by {operator.sponsor_country}" if operator.sponsor_country else ""
        held = ", ".join(f"{a.scheme} until {a.expires.isoformat()}" for a in spec.accreditations) or "none"
        return (
            f"region {spec.region} · {placed} · operator {operator.name} "
            f"({operator.kind.value}, {operator.country}{sponsor}) · accreditations: {held} "
            f"· from {self.path}"
        )


def load_clusters(folder: Path) -> list[DeclaredCluster]:
    """Every `*.yaml` in `folder`, sorted by file name; BadInput listing every broken file and field."""
    if not folder.is_dir():
        raise BadInput(f"--clusters {folder}: not a folder: give the folder holding the cluster *.yaml files")
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise BadInput(f"--clusters {folder}: no *.yaml cluster files in it (clusters/ has examples)")
    clusters: list[DeclaredCluster] = []
    problems: list[str] = []
    for path in paths:
        try:
            clusters.append(DeclaredCluster(path, load_cluster(path)))
        except BadInput as exc:
            problems.append(str(exc))
    first_file: dict[str, Path] = {}
    for cluster in clusters:
        if (first := first_file.setdefault(cluster.name, cluster.path)) != cluster.path:
            problems.append(
                f"{cluster.path}: name: cluster {cluster.name!r} is already declared in {first}: "
                "give each cluster its own name"
            )
    if problems:
        raise BadInput("\n".join(problems))
    return clusters


def _unique_codes(notes: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(note["code"] for note in notes))


@dataclass(frozen=True)
class Cell:
    """One decision: may `cluster` host `model` for `end_use`; `declared` names deployments asking for it."""

    cluster: str
    model: str
    end_use: str
    decision: dict[str, Any]
    declared: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision["allow"] is True

    @property
    def violation_codes(self) -> tuple[str, ...]:
        return _unique_codes(self.decision["violations"])

    @property
    def obligation_codes(self) -> tuple[str, ...]:
        return _unique_codes(self.decision["obligations"])

    @property
    def hover(self) -> str:
        """Every violation and obligation with its message and citation, as a tooltip shows them."""
        parts = [f"{v['code']}: {v['message']}\n— {v['citation']}" for v in self.decision["violations"]]
        parts += [
            f"obligation {o['code']}: {o['message']}\n— {o['citation']}" for o in self.decision["obligations"]
        ]
        return "\n\n".join(parts) or "allowed"


@dataclass(frozen=True)
class LegendEntry:
    code: str
    kind: str  # violation or obligation
    meaning: str
    citations: tuple[str, ...]  # every citation the decisions gave for this code, sorted


@dataclass(frozen=True)
class DeclaredDeployment:
    cluster: DeclaredCluster
    deployment: Deployment
    model: str | None  # its catalogue id; None when not a catalogue variant (so not a row of the matrix)
    # Its own decision, on every fact it declares (GPUs, its siblings' GPUs, the weights' country): the
    # decision the Pulumi preview and the operator reach for it.
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str] | None:
        return (self.cluster.name, self.model, self.deployment.end_use.value) if self.model else None


@dataclass(frozen=True)
class ComplianceMatrix:
    clusters: list[DeclaredCluster]
    models: list[str]
    end_uses: tuple[str, ...]
    cells: dict[tuple[str, str, str], Cell]
    engine: str
    policy_revision: str | None
    as_of: str
    elapsed_ms: float  # the batched evaluation alone
    deployments: list[DeclaredDeployment] = field(default_factory=list)
    code_meanings: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cells)

    def cell(self, cluster: str, model: str, end_use: str) -> Cell:
        return self.cells[(cluster, model, end_use)]

    def row(self, cluster: str, model: str) -> list[Cell]:
        return [self.cell(cluster, model, end_use) for end_use in self.end_uses]

    def allowed_count(self, cluster: str | None = None, end_use: str | None = None) -> int:
        return sum(
            cell.allowed
            for cell in self.cells.values()
            if cluster in (None, cell.cluster) and end_use in (None, cell.end_use)
        )

    def engine_failures(self) -> list[Cell]:
        """Cells the engine could not decide (denied fail-closed): the matrix then cannot be trusted."""
        return [cell for cell in self.cells.values() if UNDECIDED_CODES & set(cell.violation_codes)]

    def deployment_cell(self, declared: DeclaredDeployment) -> Cell:
        """The declared deployment's own decision, as a cell."""
        model = declared.model or declared.deployment.model
        end_use = declared.deployment.end_use.value
        return Cell(declared.cluster.name, model, end_use, declared.decision, (declared.deployment.name,))

    def legend(self) -> list[LegendEntry]:
        kinds: dict[str, str] = {}
        citations: dict[str, set[str]] = defaultdict(set)
        for cell in self.cells.values():
            for kind, notes in (("violation", "violations"), ("obligation", "obligations")):
                for note in cell.decision[notes]:
                    kinds.setdefault(note["code"], kind)
                    citations[note["code"]].add(note["citation"])
        return [
            LegendEntry(code, kinds[code], self.code_meanings.get(code, ""), tuple(sorted(citations[code])))
            for code in sorted(kinds)
        ]


def matrix_inputs(
    clusters: list[DeclaredCluster], data: PolicyData, as_of: date
) -> tuple[list[tuple[str, str, str]], list[DecisionInput]]:
    """The input of every cell, keyed (cluster, model, end use), clusters then variants then uses."""
    keys: list[tuple[str, str, str]] = []
    inputs: list[DecisionInput] = []
    for cluster in clusters:
        obj = sovereign_cluster(cluster.spec)
        for variant in data.models:
            for end_use in END_USES:
                keys.append((cluster.name, variant.id, end_use))
                inputs.append(model_input(obj, variant.id, end_use, as_of=as_of.isoformat()))
    return keys, inputs


def compute_matrix(
    clusters: list[DeclaredCluster], judge: Judge, data: PolicyData, as_of: date
) -> ComplianceMatrix:
    """Judge every variant x cluster x end use, and every declared deployment, in ONE batched evaluation."""
    keys, inputs = matrix_inputs(clusters, data, as_of)
    declared = [
        (cluster, deployment, inp)
        for cluster in clusters
        for deployment, inp in zip(
            cluster.spec.deployments, declared_inputs(cluster.spec, as_of.isoformat()).values(), strict=True
        )
    ]
    started = time.perf_counter()
    judgements = judge.judge_many([*inputs, *(inp for _, _, inp in declared)])
    elapsed_ms = (time.perf_counter() - started) * 1000
    decisions = [j.decision() for j in judgements]

    # A deployment may name its model by HF repo id: the catalogue resolves it to its row.
    deployments = [
        DeclaredDeployment(
            cluster,
            deployment,
            variant.id if (variant := data.model(deployment.model)) else None,
            decision,
        )
        for (cluster, deployment, _), decision in zip(declared, decisions[len(inputs) :], strict=True)
    ]
    declared_at: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for item in deployments:
        if item.key:
            declared_at[item.key].append(item.deployment.name)
    cells = {
        key: Cell(*key, decision=decision, declared=tuple(declared_at.get(key, ())))
        for key, decision in zip(keys, decisions[: len(inputs)], strict=True)
    }
    return ComplianceMatrix(
        clusters=clusters,
        models=[variant.id for variant in data.models],
        end_uses=END_USES,
        cells=cells,
        engine=judge.engine.name,
        policy_revision=next((j.policy_revision for j in judgements if j.policy_revision), None),
        as_of=as_of.isoformat(),
        elapsed_ms=elapsed_ms,
        deployments=deployments,
        code_meanings={code: entry.meaning for code, entry in data.codes.items()},
    )
