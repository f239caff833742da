"""What a region runs now, read from its API server: clusters and their accreditations, deployments, and the
weights digests the data plane recorded on each RayService."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from operators.sovereign_operator.kube import Kube, api_client
from operators.sovereign_operator.weights_mounts import WeightsMounts, weights_path
from sovereign import vocabulary as k8s

EXPIRING_WITHIN = timedelta(days=30)  # the alert's horizon (infra/monitoring: accreditation expiring)


@dataclass(frozen=True)
class RegionState:
    clusters: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    rayservices: list[dict[str, Any]]

    @classmethod
    def read(cls, kubeconfig: Path | None, region: str) -> RegionState:
        kube = Kube(api_client(kubeconfig))
        clusters = [c for c in kube.list_all(k8s.CLUSTERS) if (c.get("spec") or {}).get("region") == region]
        names = {c["metadata"]["name"] for c in clusters}
        deployments = [d for d in kube.list_all(k8s.DEPLOYMENTS) if d["spec"].get("clusterRef") in names]
        rayservices = [
            rs
            for rs in kube.list_all(k8s.RAYSERVICES, k8s.RAY_GROUP, k8s.RAY_VERSION)
            if ((rs.get("metadata") or {}).get("labels") or {}).get(k8s.LABEL_CLUSTER) in names
        ]
        return cls(clusters, deployments, rayservices)

    def accreditations(self, today: date) -> list[dict[str, Any]]:
        """Each cluster's accreditations with their state on `today`: valid, expiring (within 30 days) or
        expired."""
        rows = []
        for cluster in self.clusters:
            for accreditation in (cluster.get("spec") or {}).get("accreditations") or []:
                expires = date.fromisoformat(str(accreditation.get("expires")))
                state = (
                    "expired"
                    if expires < today
                    else "expiring"
                    if expires - today <= EXPIRING_WITHIN
                    else "valid"
                )
                rows.append(
                    {
                        "cluster": cluster["metadata"]["name"],
                        "scheme": accreditation.get("scheme"),
                        "reference": accreditation.get("reference"),
                        "expires": expires.isoformat(),
                        "state": state,
                    }
                )
        return rows

    def checkpoints(self, mounts: WeightsMounts) -> dict[str, tuple[Path, str | None]]:
        """Each deployment's checkpoint folder where `mounts` (the operator's --weights-mount) make it
        readable here, and the signer the deployment names, by NAMESPACE/NAME (as weights() names them)."""
        found = {}
        for deployment in self.deployments:
            meta, spec = deployment["metadata"], deployment["spec"]
            signer = (spec.get("weights") or {}).get("signer")
            if (folder := mounts.locate(weights_path(spec))) is not None:
                found[f"{meta['namespace']}/{meta['name']}"] = (folder, signer)
        return found

    def weights(self) -> list[dict[str, Any]]:
        """Every file digest the data plane recorded (condition WeightsVerified), per RayService and model."""
        rows = []
        for rs in self.rayservices:
            meta = rs["metadata"]
            for condition in (rs.get("status") or {}).get("conditions") or []:
                if (
                    condition.get("type") != k8s.CONDITION_WEIGHTS_VERIFIED
                    or condition.get("status") != "True"
                ):
                    continue
                for line in str(condition.get("message") or "").splitlines():
                    model, _, rest = line.partition(": ")
                    name, _, digest = rest.partition(" sha256=")
                    rows.append(
                        {
                            "rayservice": f"{meta['namespace']}/{meta['name']}",
                            "cluster": meta["labels"][k8s.LABEL_CLUSTER],
                            "model": model,
                            "file": name,
                            "sha256": digest,
                        }
                    )
        return rows
