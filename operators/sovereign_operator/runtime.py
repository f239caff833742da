"""Everything one operator process holds, built once from its configuration and handed to kopf as memo."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from operators.sovereign_operator.admission import Admission
from operators.sovereign_operator.cluster_requests import RequestDesk
from operators.sovereign_operator.drift import DeploymentFleet, DriftWatcher
from operators.sovereign_operator.engines import engines_from_env
from operators.sovereign_operator.facts import ClaimLedger
from operators.sovereign_operator.kube import Kube, SharedReads, api_client
from operators.sovereign_operator.reconcile import Reconciler
from operators.sovereign_operator.weights_mounts import WeightsMounts
from serving.manifest import RAY_IMAGE
from sovereign.audit.record import Point
from sovereign.audit.trail import AuditTrail, open_log
from sovereign.audit.writer import DecisionLog
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.judgement import Judge
from sovereign.policy.screening_source import Screening


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: Path
    drift_interval_s: float = 30.0
    recheck_interval_s: float = 600.0
    batch_timeout_s: float = 120.0
    as_of: date | None = None  # judge as of this date instead of today (rehearsals, audits)
    screening_list: Path | None = None  # None: $SOVEREIGN_SCREENING_LIST, else the dev sample
    ray_image: str = RAY_IMAGE
    # Where admission reads checkpoints (none mounted: the replicas alone check weights, at load).
    weights: WeightsMounts = field(default_factory=WeightsMounts)

    def today(self) -> date:
        return self.as_of or datetime.now(UTC).date()


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    single: Judge  # one-deployment reconciles (the fleet judges in batches, admission and requests apart)
    reconciler: Reconciler
    fleet: DeploymentFleet
    admission: Admission
    desk: RequestDesk
    drift: DriftWatcher
    decisions: DecisionLog  # every judgement of this process, one record each (sovereign.audit)
    admission_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="admission")
    )
    # SovereignClusters as the API server has them, read once for the reviews that asked at once.
    cluster_reads: SharedReads[dict[str, Any] | None] = field(init=False)
    # Every cluster's claims, kept from the watch (handlers.py): what admission and single reconciles count.
    claims: ClaimLedger = field(default_factory=ClaimLedger)
    # The spec generation last seen of each RayService the operator owns: a move is someone's edit (or ours).
    _generations: dict[tuple[str, str], int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cluster_reads = SharedReads(self.kube.get_cluster)

    @classmethod
    def build(cls, config: OperatorConfig) -> Runtime:
        kube = Kube(api_client(config.kubeconfig))
        engines = engines_from_env(config.batch_timeout_s)
        screening = Screening.enforcing(config.screening_list)
        decisions = open_log("operator")

        def judge(engine: PolicyEngine, point: Point) -> Judge:
            """A judge per point, so each judgement's record says where it was made."""
            return Judge(engine, screening, config.today, AuditTrail(decisions, point))

        drift_judge = judge(engines.batch, Point.DRIFT)
        reconciler = Reconciler(kube, config.ray_image)
        fleet = DeploymentFleet(kube, reconciler, drift_judge)
        return cls(
            config=config,
            kube=kube,
            single=judge(engines.single, Point.RECONCILE),
            reconciler=reconciler,
            fleet=fleet,
            admission=Admission(judge(engines.single, Point.ADMISSION), config.weights),
            desk=RequestDesk(kube, judge(engines.single, Point.CLUSTER_REQUEST)),
            drift=DriftWatcher(
                fleet, drift_judge, config.recheck_interval_s, screening_version=screening.version
            ),
            decisions=decisions,
        )

    def spec_changed(self, rs: Mapping[str, Any]) -> bool:
        """Whether this RayService's spec changed since last seen (the first sight is not a change)."""
        meta = rs.get("metadata") or {}
        key, generation = (
            (str(meta.get("namespace")), str(meta.get("name"))),
            int(meta.get("generation") or 0),
        )
        previous = self._generations.get(key)
        self._generations[key] = generation
        return previous is not None and generation != previous

    def start(self) -> None:
        """Start the drift watch (its first pass judges everything) and the ClusterRequests' retries; kopf
        calls this at startup."""
        self._threads = [
            threading.Thread(
                target=self.drift.run,
                args=(self._stop, self.config.drift_interval_s),
                name="drift",
                daemon=True,
            ),
            threading.Thread(target=self.desk.run_retries, args=(self._stop,), name="requests", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the drift watch, the retries and the admission threads; kopf calls this at cleanup."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.admission_pool.shutdown(wait=False, cancel_futures=True)
        self.decisions.close()  # the final signed head: the segment ends sealed
