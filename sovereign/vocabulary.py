"""sovereign's Kubernetes vocabulary, in one place: API groups, versions, plurals, labels, annotations,
condition types and reasons, phases.

Every module that reads or writes a Kubernetes object names it from here, so a group, a label key or a
phase is spelled once. One label domain: `sovereign.dev/` (the API group), for labels, annotations and
domain-qualified condition types alike.
"""

from __future__ import annotations

# --- API groups, versions, kinds, plurals --------------------------------------------------------------
GROUP = "sovereign.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

SOVEREIGN_CLUSTER = "SovereignCluster"
LLAMA_DEPLOYMENT = "LlamaDeployment"
CLUSTER_REQUEST = "ClusterRequest"
CLUSTERS = "sovereignclusters"
DEPLOYMENTS = "llamadeployments"
REQUESTS = "clusterrequests"
# GROUP/VERSION/PLURAL, as the exporter is configured with it.
CLUSTERS_RESOURCE = f"{API_VERSION}/{CLUSTERS}"

# KubeRay's API (pinned v1.5.1: ray.io/v1).
RAY_GROUP = "ray.io"
RAY_VERSION = "v1"
RAY_API_VERSION = f"{RAY_GROUP}/{RAY_VERSION}"
RAY_SERVICE = "RayService"
RAY_CLUSTER = "RayCluster"
RAYSERVICES = "rayservices"
RAYCLUSTERS = "rayclusters"
RAYJOBS = "rayjobs"

GPU_RESOURCE = "nvidia.com/gpu"

# --- labels and annotations ----------------------------------------------------------------------------
_DOMAIN = f"{GROUP}/"

# A namespace with this label is under the admission webhook, and is where the operator may write.
LABEL_MANAGED = f"{_DOMAIN}managed"
# What a RayService (and its pods) serves: read by the exporter for GPU accounting and by admission.
LABEL_REGION = f"{_DOMAIN}region"
LABEL_CLUSTER = f"{_DOMAIN}cluster"
LABEL_MODEL = f"{_DOMAIN}model"
LABEL_TENANT = f"{_DOMAIN}tenant"
LABEL_END_USE = f"{_DOMAIN}end-use"
LABEL_DEPLOYMENT = f"{_DOMAIN}llamadeployment"
# The ClusterRequest a SovereignCluster was created for (a namespaced object cannot own a cluster one).
LABEL_REQUEST_NAMESPACE = f"{_DOMAIN}request-namespace"
LABEL_REQUEST_NAME = f"{_DOMAIN}request-name"
LABEL_REQUEST_UID = f"{_DOMAIN}request-uid"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "sovereign-operator"
# Hash of the RayService spec the operator rendered: equal hashes mean nothing to write.
ANNOTATION_SPEC_HASH = f"{_DOMAIN}spec-hash"
# The revision of the signed policy bundle a ConfigMap carries (an in-cluster region's OPA serves it).
ANNOTATION_POLICY_REVISION = f"{_DOMAIN}policy-revision"

# --- the operator's identity -----------------------------------------------------------------------
OPERATOR_NAMESPACE = "sovereign-system"
OPERATOR_SERVICE_ACCOUNT = (OPERATOR_NAMESPACE, "sovereign-operator")
NAMESPACE_ROLE = "sovereign-operator-namespace"
OPERATOR_COMPONENT = "sovereign-operator"

# --- condition types (metav1.Condition.type) -------------------------------------------------------
CONDITION_POLICY_COMPLIANT = "PolicyCompliant"  # LlamaDeployment: the policy's judgement
CONDITION_DEPLOYED = "Deployed"  # LlamaDeployment: its RayService
CONDITION_DECIDED = "Decided"  # ClusterRequest: the policy's judgement
CONDITION_CLUSTER_PROVISIONED = "ClusterProvisioned"  # ClusterRequest: its SovereignCluster
CONDITION_WEIGHTS_VERIFIED = f"{_DOMAIN}WeightsVerified"  # RayService: written by the data plane

# --- condition reasons -----------------------------------------------------------------------------
# PolicyCompliant / Decided: what the judgement was.
REASON_ALLOWED = "Allowed"
REASON_DENIED = "Denied"
REASON_DENIED_WARN_ONLY = "DeniedWarnOnly"
REASON_DENIED_DRY_RUN = "DeniedDryRun"
REASON_ENGINE_UNAVAILABLE = "PolicyEngineUnavailable"
REASON_SCREENING_UNAVAILABLE = "ScreeningListUnavailable"
REASON_CLUSTER_NOT_FOUND = "ClusterNotFound"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_RETRYING = (
    "Retrying"  # a ClusterRequest: a transient failure (the API server refused a write), retried
)
# Admission or a replica cannot read the checkpoint it must judge: UNJUDGEABLE (no input), not a policy code.
REASON_WEIGHTS_UNREADABLE = "WeightsUnreadable"
# Deployed: what happened to the RayService.
REASON_APPLIED = "RayServiceApplied"
REASON_APPLY_FAILED = "ApplyFailed"
REASON_AWAITING_DECISION = "AwaitingDecision"
REASON_NOT_CREATED = "NotCreated"
REASON_SUSPENDED = "Suspended"
REASON_NAME_CONFLICT = "NameConflict"
# ClusterProvisioned.
REASON_CREATED = "Created"
REASON_NAME_TAKEN = "NameTaken"

# --- Events (core/v1 Event type and reason) ----------------------------------------------------------
EVENT_NORMAL = "Normal"
EVENT_WARNING = "Warning"
# A LlamaDeployment: what a decision changed (the PolicyCompliant reason it set, see reconcile).
EVENT_POLICY_ALLOWED = "PolicyAllowed"
EVENT_POLICY_DENIED = "PolicyDenied"
EVENT_VIOLATIONS_WARNED = "PolicyViolationsWarned"
EVENT_VIOLATIONS_RECORDED = "PolicyViolationsRecorded"
# A LlamaDeployment: what happened to its RayService.
EVENT_RAYSERVICE_CREATED = "RayServiceCreated"
EVENT_RAYSERVICE_RESUMED = "RayServiceResumed"
EVENT_RAYSERVICE_UPDATED = "RayServiceUpdated"
EVENT_RAYSERVICE_SUSPENDED = "RayServiceSuspended"
EVENT_RAYSERVICE_APPLY_FAILED = "RayServiceApplyFailed"
# A ClusterRequest: its decision (ClusterRequest<phase>) and the SovereignCluster created for it.
EVENT_CLUSTER_REQUEST_APPROVED = "ClusterRequestApproved"
EVENT_CLUSTER_REQUEST_DENIED = "ClusterRequestDenied"
EVENT_SOVEREIGN_CLUSTER_CREATED = "SovereignClusterCreated"

# --- phases (status.phase) -------------------------------------------------------------------------
PHASE_RUNNING = "Running"
PHASE_SUSPENDED = "Suspended"
PHASE_REFUSED = "Refused"
PHASE_PENDING = "Pending"
PHASE_APPROVED = "Approved"
PHASE_DENIED = "Denied"

# --- KubeRay's RayService status, as the local data plane writes it (KubeRay v1.5.1's words) -----------
RAY_CONDITION_READY = "Ready"
RAY_CONDITION_SUSPENDED = "Suspended"
RAY_CONDITION_UPGRADE_IN_PROGRESS = "UpgradeInProgress"
RAY_REASON_SUSPENDED = "Suspended"
RAY_REASON_SUSPEND_COMPLETE = "SuspendComplete"
RAY_REASON_VALIDATION_FAILED = "ValidationFailed"
# The local data plane's own: it cannot place (GPUs) or load (weights) the service, so it does not deploy it.
RAY_REASON_UNSCHEDULABLE = "Unschedulable"
RAY_REASON_WEIGHTS_NOT_FOUND = "WeightsNotFound"
RAY_REASON_SERVING = "NonZeroServeEndpoints"
RAY_REASON_INITIALIZING = "Initializing"
RAY_REASON_NO_PENDING_CLUSTER = "NoPendingCluster"
RAY_SERVICE_STATUS_RUNNING = "Running"
# Written beside them on the WeightsVerified condition.
REASON_DIGESTS_RECORDED = "DigestsRecorded"
