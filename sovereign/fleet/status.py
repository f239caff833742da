"""What runs in each region of the fleet, as the operator last recorded it, and its GPUs from Prometheus.

Decisions are read from the status the operator wrote on each object (what is in force), never re-judged
here; GPU figures come from the exporter's series, read back from the region's Prometheus.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from operators.sovereign_operator.cluster_requests import is_decided
from operators.sovereign_operator.conditions import find
from operators.sovereign_operator.kube import Kube
from sovereign import vocabulary as k8s
from sovereign.errors import SovereignError
from sovereign.exporter.readback import snapshot
from sovereign.fleet.fleetfile import FleetFile, FleetRegion, RegionUnreachable
from sovereign.report.prometheus_api import PrometheusApi

EXPIRY_WINDOW = timedelta(days=30)


class ClusterView(BaseModel):
    name: str
    region: str | None  # its region profile
    enforcement: str | None


class Expiring(BaseModel):
    cluster: str
    scheme: str | None
    expires: date
    days_left: int  # negative: expired


class DeploymentView(BaseModel):
    namespace: str
    name: str
    cluster: str | None
    model: str | None
    end_use: str | None
    phase: str | None
    compliant: str | None  # PolicyCompliant: True, False, Unknown (None: not judged yet)
    reason: str | None
    codes: list[str]
    revision: str | None


class RequestView(BaseModel):
    namespace: str
    name: str
    phase: str | None
    reason: str | None
    message: str | None


class Gpus(BaseModel):
    prometheus: str | None
    allocated: float | None = None
    in_use: float | None = None  # busy now (utilisation above 0)
    capacity: float | None = None
    unavailable: str | None = None  # why there are no figures


class RegionStatus(BaseModel):
    region: str
    reachable: bool
    problem: str | None = None
    clusters: list[ClusterView] = []
    deployments: list[DeploymentView] = []
    pending_requests: list[RequestView] = []
    revisions_in_force: list[str] = []
    expiring_accreditations: list[Expiring] = []
    gpus: Gpus


class FleetStatus(BaseModel):
    as_of: date
    regions: list[RegionStatus]


def _named(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {"namespace": str(meta.get("namespace") or ""), "name": str(meta.get("name"))}


def _deployment(obj: Mapping[str, Any]) -> DeploymentView:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    compliant = find(status.get("conditions"), k8s.CONDITION_POLICY_COMPLIANT) or {}
    return DeploymentView(
        **_named(obj),
        cluster=spec.get("clusterRef"),
        model=spec.get("model"),
        end_use=spec.get("endUse"),
        phase=status.get("phase"),
        compliant=compliant.get("status"),
        reason=compliant.get("reason"),
        codes=sorted({str(v.get("code")) for v in status.get("violations") or []}),
        revision=(status.get("policy") or {}).get("revision"),
    )


def _request(obj: Mapping[str, Any]) -> RequestView:
    status = obj.get("status") or {}
    decided = find(status.get("conditions"), k8s.CONDITION_DECIDED) or {}
    return RequestView(
        **_named(obj),
        phase=status.get("phase"),
        reason=decided.get("reason"),
        message=decided.get("message"),
    )


def _expiring(cluster: Mapping[str, Any], today: date) -> list[Expiring]:
    found = []
    for accreditation in (cluster.get("spec") or {}).get("accreditations") or []:
        try:
            expires = date.fromisoformat(str(accreditation.get("expires")))
        except ValueError:
            continue  # the API server validates the date; an unreadable one is admission's to refuse
        if expires - today <= EXPIRY_WINDOW:
            found.append(
                Expiring(
                    cluster=_named(cluster)["name"],
                    scheme=accreditation.get("scheme"),
                    expires=expires,
                    days_left=(expires - today).days,
                )
            )
    return found


def _gpus(name: str, region: FleetRegion, clusters: list[Mapping[str, Any]]) -> Gpus:
    url = region.prometheus_url
    if url is None:
        return Gpus(prometheus=None, unavailable="no Prometheus for this region in the fleet file")
    try:
        rows = snapshot(PrometheusApi.at(url, f"regions.{name}.prometheus in the fleet file"))
    except SovereignError as exc:
        return Gpus(prometheus=url, unavailable=str(exc))
    # The exporter labels series with the cluster's region profile and name.
    ours = {(str((c.get("spec") or {}).get("region")), _named(c)["name"]) for c in clusters}
    mine = [row for key, row in rows.items() if key in ours]
    return Gpus(
        prometheus=url,
        allocated=sum(row.get("allocated", 0.0) for row in mine),
        in_use=sum(row.get("busy", 0.0) for row in mine),
        capacity=sum(row.get("capacity", 0.0) for row in mine),
    )


def _read(kube: Kube) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    return kube.list_all(k8s.CLUSTERS), kube.list_all(k8s.DEPLOYMENTS), kube.list_all(k8s.REQUESTS)


def summarise(
    name: str,
    clusters: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    gpus: Gpus,
    today: date,
) -> RegionStatus:
    """A region's status from its objects as listed."""
    views = [_deployment(d) for d in deployments]
    return RegionStatus(
        region=name,
        reachable=True,
        clusters=[
            ClusterView(
                name=_named(c)["name"],
                region=(c.get("spec") or {}).get("region"),
                enforcement=(c.get("spec") or {}).get("enforcement"),
            )
            for c in clusters
        ],
        deployments=views,
        pending_requests=[_request(r) for r in requests if not is_decided(r)],
        revisions_in_force=sorted({v.revision for v in views if v.revision}),
        expiring_accreditations=[e for c in clusters for e in _expiring(c, today)],
        gpus=gpus,
    )


def region_status(name: str, region: FleetRegion, today: date) -> RegionStatus:
    try:
        clusters, deployments, requests = region.read(_read)
    except RegionUnreachable as exc:
        unread = Gpus(prometheus=region.prometheus_url, unavailable="the region's clusters could not be read")
        return RegionStatus(region=name, reachable=False, problem=str(exc), gpus=unread)
    return summarise(name, clusters, deployments, requests, _gpus(name, region, clusters), today)


def fleet_status(fleet: FleetFile, today: date) -> FleetStatus:
    return FleetStatus(
        as_of=today, regions=[region_status(name, region, today) for name, region in fleet.regions.items()]
    )
