"""The Kubernetes objects of one sovereign region, as plain manifests (no Pulumi here, so easy to test).

SovereignCluster/LlamaDeployment objects, the CRDs and the operator's RBAC come from `operators/` (its
manifests module and files); this module adds what only a region deployment has: namespaces, egress
policy, the policy bundle for OPA, in-cluster Deployments, the webhook registration and monitoring.
"""

from __future__ import annotations

import base64
import copy
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from operators.manifests import KUBERAY_NAMESPACE
from operators.sovereign_operator.admission import webhook_configuration
from sovereign.audit.keys import PRIVATE_KEY_ENV as AUDIT_KEY_ENV
from sovereign.exporter.entry import DEFAULT_PORT as EXPORTER_PORT
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SignedBundle, opa_server_args
from sovereign.policy.opa_endpoint import OPA_CA_ENV, OPA_URL_ENV
from sovereign.policy.opa_token import TOKEN_ENV
from sovereign.policy.screening_source import SCREENING_LIST_ENV
from sovereign.vocabulary import (
    ANNOTATION_POLICY_REVISION,
    CLUSTERS,
    GROUP,
    LABEL_MANAGED_BY,
    OPERATOR_NAMESPACE,
    RAY_GROUP,
    RAYSERVICES,
)

SYSTEM_NAMESPACE = OPERATOR_NAMESPACE
PART_OF = {"app.kubernetes.io/part-of": "sovereign", LABEL_MANAGED_BY: "pulumi"}
OPERATOR_NAME = "sovereign-operator"
OPA_NAME = "sovereign-opa"
OPA_PORT = 8181
BUNDLE_CONFIGMAP = "sovereign-policy-bundle"
# The key OPA verifies the bundle with travels in its own ConfigMap, mounted at its own path: never
# beside the bundle it verifies.
TRUST_CONFIGMAP = "sovereign-policy-trust"
TRUST_FILE = "policy-bundle.pem"
BUNDLE_MOUNT, TRUST_MOUNT = "/bundle", "/trust"
# OPA serves TLS only, with a certificate for sovereign-opa.sovereign-system.svc from this kubernetes.io/tls
# Secret (tls.crt, tls.key, and ca.crt: the CA the operator pins), and answers only the token in the
# second Secret (key `token`, at least 32 characters). Both are the platform engineer's to create.
OPA_TLS_SECRET = "sovereign-opa-tls"
OPA_TOKEN_SECRET = "sovereign-opa-token"
TLS_MOUNT, OPA_CA_MOUNT = "/tls", "/opa-ca"
WEBHOOK_PORT = 9443
# The operator's /metrics (compliance, accreditation expiry, admission decisions, engine health), beside
# the exporter's 9401.
OPERATOR_METRICS_PORT = 9402
EXPORTER_NAME = "sovereign-exporter"
ACCOUNTING_NAME = "sovereign-exporter-accounting"
# What `sovereign operator setup --out DIR` writes (its ServiceAccount kubeconfig, webhook certificate),
# made into a Secret by the platform engineer: the operator runs with nothing more.
CREDENTIALS_SECRET = "sovereign-operator-credentials"
# The denied-party list the operator screens with: a PersistentVolumeClaim the organisation fills with the
# current Consolidated Screening List (and refreshes; the operator re-reads the file when it changes).
SCREENING_CLAIM = "sovereign-screening-list"
SCREENING_MOUNT, SCREENING_FILE = "/screening", "consolidated.json"
# The usual label the Grafana dashboard sidecar (kiwigrid/k8s-sidecar in the Grafana chart) watches,
# and the same convention for a rules sidecar.
GRAFANA_DASHBOARD_LABEL = {"grafana_dashboard": "1"}
PROMETHEUS_RULE_LABEL = {"prometheus_rule": "1"}
Manifest = dict[str, Any]


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**PART_OF, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace(name: str, labels: dict[str, str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=labels)}


def egress_policy(ns: str, in_region: list[IPv4Network | IPv6Network]) -> Manifest:
    """Default-deny egress for every pod of `ns`: only DNS, its own namespace, the sovereign system
    namespace (OPA, the operator) and the region's own endpoints may be reached."""
    rules: list[dict[str, Any]] = [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"podSelector": {}}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": SYSTEM_NAMESPACE}}}]},
    ]
    if in_region:
        rules.append({"to": [{"ipBlock": {"cidr": str(cidr)}} for cidr in in_region]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("sovereign-egress-in-region", ns),
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": rules},
    }


def bundle_configmap(bundle: SignedBundle) -> Manifest:
    """The signed Rego bundle, for an OPA in the cluster to verify and serve."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            **_meta(BUNDLE_CONFIGMAP, SYSTEM_NAMESPACE),
            "annotations": {ANNOTATION_POLICY_REVISION: bundle.revision},
        },
        "binaryData": {"bundle.tar.gz": base64.b64encode(bundle.rego.read_bytes()).decode()},
    }


def trust_configmap(trust_anchor: Path) -> Manifest:
    """The public key OPA verifies the bundle with: the trust anchor the stack is configured with."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(TRUST_CONFIGMAP, SYSTEM_NAMESPACE),
        "data": {TRUST_FILE: trust_anchor.read_text()},
    }


def _service(name: str, port: int, target: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, SYSTEM_NAMESPACE),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "https", "port": port, "targetPort": target}],  # both serve TLS only
        },
    }


def scrape_annotations(port: int) -> dict[str, str]:
    """The prometheus.io/* pod annotations that Prometheus's usual `kubernetes-pods` scrape job (the
    prometheus-community chart's default) keeps and follows: no PodMonitor CRD needed (infra/README.md)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}


def _workload(
    kind: str, name: str, pod_spec: dict[str, Any], annotations: dict[str, str] | None = None
) -> Manifest:
    labels = {"app.kubernetes.io/name": name}
    template: dict[str, Any] = {"labels": {**PART_OF, **labels}}
    if annotations:
        template["annotations"] = annotations
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": template, "spec": pod_spec},
    }
    if kind == "Deployment":
        spec = {"replicas": 1, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _meta(name, SYSTEM_NAMESPACE, labels),
        "spec": spec,
    }


# The bundle as every pod mounts it: OPA serves it, the operator verifies its own copy (the revision pin).
MOUNTED_BUNDLE = SignedBundle.at(Path(BUNDLE_MOUNT), "", Path(TRUST_MOUNT) / TRUST_FILE)
_POLICY_VOLUMES = [
    {"name": "bundle", "configMap": {"name": BUNDLE_CONFIGMAP}},
    {"name": "trust", "configMap": {"name": TRUST_CONFIGMAP}},
]
_POLICY_MOUNTS = [
    {"name": "bundle", "mountPath": BUNDLE_MOUNT, "readOnly": True},
    {"name": "trust", "mountPath": TRUST_MOUNT, "readOnly": True},
]
_TOKEN = {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": OPA_TOKEN_SECRET, "key": "token"}}}


def opa_workload(image: str) -> list[Manifest]:
    """OPA serving the bundle ConfigMap, refusing it unless it verifies with the trust ConfigMap's key, over
    TLS only and to requests bearing the token."""
    container = {
        "name": "opa",
        "image": image,
        "args": [
            "run",
            "--server",
            f"--addr=0.0.0.0:{OPA_PORT}",
            f"--tls-cert-file={TLS_MOUNT}/tls.crt",
            f"--tls-private-key-file={TLS_MOUNT}/tls.key",
            "--disable-telemetry",
            *opa_server_args(MOUNTED_BUNDLE),
        ],
        "env": [_TOKEN],
        "ports": [{"containerPort": OPA_PORT, "name": "https"}],
        # The kubelet probes without the token (health needs none) and without checking the certificate.
        "readinessProbe": {"httpGet": {"path": "/health?bundles=true", "port": OPA_PORT, "scheme": "HTTPS"}},
        "volumeMounts": [*_POLICY_MOUNTS, {"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True}],
    }
    pod = {
        "containers": [container],
        "volumes": [*_POLICY_VOLUMES, {"name": "tls", "secret": {"secretName": OPA_TLS_SECRET}}],
    }
    return [_workload("Deployment", OPA_NAME, pod), _service(OPA_NAME, OPA_PORT, OPA_PORT)]


def opa_url() -> str:
    return f"https://{OPA_NAME}.{SYSTEM_NAMESPACE}.svc:{OPA_PORT}"


# The operator image's user (images/operator.Containerfile USER): non-root, numeric for runAsNonRoot.
OPERATOR_UID = 10001
# What the operator writes, on volumes of their own, so that its root filesystem is read-only: the state
# dir (its decision log segments; the image's SOVEREIGN_STATE_DIR), kept on a claim the platform engineer
# creates so the log outlives the pod, and /tmp.
STATE_MOUNT, TMP_MOUNT = "/var/lib/sovereign", "/tmp"
STATE_CLAIM = "sovereign-operator-state"
# The audit key the operator signs its decision log with (`sovereign audit keygen`'s audit-log.key), a
# Secret the platform engineer creates. The operator refuses a key file others may read, and a Secret
# volume is group-readable under fsGroup: an init container copies it, 0600 and owned by the operator's
# user, into a memory-backed volume, so the key never lies on the node's disk.
AUDIT_KEY_SECRET, AUDIT_KEY_FILE = "sovereign-audit-key", "audit-log.key"
AUDIT_KEY_SECRET_MOUNT, AUDIT_KEY_MOUNT = "/audit-key-secret", "/audit-key"
# Restricted Pod Security Standard: non-root, no privilege escalation, no capabilities, the runtime's
# seccomp profile; and a read-only root filesystem, which the operator allows (it writes only the above).
OPERATOR_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": OPERATOR_UID,
    "runAsGroup": OPERATOR_UID,
    "fsGroup": OPERATOR_UID,  # the state claim and the audit key's copy are the operator's to write
    "seccompProfile": {"type": "RuntimeDefault"},
}
OPERATOR_CONTAINER_SECURITY = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def operator_workload(image: str, service_account: str, serving_image: str | None = None) -> list[Manifest]:
    """The operator under its own ServiceAccount, asking the in-cluster OPA (its CA pinned, with the token,
    believed only on the revision of the bundle the operator verified itself), serving its webhook over
    TLS, writing `serving_image` (the serving image, images/serving.Containerfile) into its RayServices, and
    serving its metrics on every interface of the pod for the cluster's Prometheus."""
    args = ["operator", "run", "--credentials", "/credentials"]
    args += ["--metrics-port", str(OPERATOR_METRICS_PORT), "--metrics-addr", "0.0.0.0"]
    if serving_image:
        args += ["--ray-image", serving_image]
    container = {
        "name": "operator",
        "image": image,
        "args": args,
        "securityContext": OPERATOR_CONTAINER_SECURITY,
        "env": [
            {"name": "SOVEREIGN_STATE_DIR", "value": STATE_MOUNT},
            {"name": AUDIT_KEY_ENV, "value": f"{AUDIT_KEY_MOUNT}/{AUDIT_KEY_FILE}"},
            {"name": OPA_URL_ENV, "value": opa_url()},
            {"name": OPA_CA_ENV, "value": f"{OPA_CA_MOUNT}/ca.crt"},
            _TOKEN,
            {"name": BUNDLE_DIR_ENV, "value": str(MOUNTED_BUNDLE.rego.parent)},
            {"name": TRUST_ANCHOR_ENV, "value": str(MOUNTED_BUNDLE.verification_key)},
            {"name": SCREENING_LIST_ENV, "value": f"{SCREENING_MOUNT}/{SCREENING_FILE}"},
        ],
        "ports": [
            {"containerPort": WEBHOOK_PORT, "name": "webhook"},
            {"containerPort": OPERATOR_METRICS_PORT, "name": "metrics"},
        ],
        "volumeMounts": [
            {"name": "credentials", "mountPath": "/credentials", "readOnly": True},
            {"name": "screening", "mountPath": SCREENING_MOUNT, "readOnly": True},
            *_POLICY_MOUNTS,
            {"name": "opa-ca", "mountPath": OPA_CA_MOUNT, "readOnly": True},
            {"name": "audit-key", "mountPath": AUDIT_KEY_MOUNT, "readOnly": True},
            {"name": "state", "mountPath": STATE_MOUNT},
            {"name": "tmp", "mountPath": TMP_MOUNT},
        ],
    }
    copy_key = {
        "name": "audit-key",
        "image": image,
        "command": [
            "install",
            "-m",
            "0600",
            f"{AUDIT_KEY_SECRET_MOUNT}/{AUDIT_KEY_FILE}",
            f"{AUDIT_KEY_MOUNT}/{AUDIT_KEY_FILE}",
        ],
        "securityContext": OPERATOR_CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "audit-key-secret", "mountPath": AUDIT_KEY_SECRET_MOUNT, "readOnly": True},
            {"name": "audit-key", "mountPath": AUDIT_KEY_MOUNT},
        ],
    }
    pod = {
        "serviceAccountName": service_account,
        "securityContext": OPERATOR_POD_SECURITY,
        "initContainers": [copy_key],
        "containers": [container],
        "volumes": [
            {"name": "state", "persistentVolumeClaim": {"claimName": STATE_CLAIM}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "audit-key-secret", "secret": {"secretName": AUDIT_KEY_SECRET}},
            {"name": "audit-key", "emptyDir": {"medium": "Memory"}},
            {"name": "credentials", "secret": {"secretName": CREDENTIALS_SECRET}},
            # The Consolidated Screening List (tens of MB, past a ConfigMap's 1 MiB) on a volume the
            # organisation keeps current; without it the operator refuses to start, naming the setting.
            {"name": "screening", "persistentVolumeClaim": {"claimName": SCREENING_CLAIM, "readOnly": True}},
            *_POLICY_VOLUMES,
            # Only the CA from OPA's TLS Secret: its private key stays with OPA.
            {
                "name": "opa-ca",
                "secret": {"secretName": OPA_TLS_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
            },
        ],
    }
    return [
        _workload("Deployment", OPERATOR_NAME, pod, scrape_annotations(OPERATOR_METRICS_PORT)),
        _service(OPERATOR_NAME, 443, WEBHOOK_PORT),
    ]


# Where the exporter runs: GPU nodes as NVIDIA's GPU Feature Discovery (GPU operator) labels them, with
# the taint GPU node pools commonly carry tolerated; a node without GPUs would only report NVML down.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
UNATTRIBUTED_CLUSTER = "unattributed"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def exporter_workload(image: str, region: str, cluster: str) -> list[Manifest]:
    """The exporter (`sovereign exporter --in-cluster`, from the operator image, which carries nvidia-ml-py
    and the kubernetes client) under a ServiceAccount that may only list what it reads: on every GPU node a
    DaemonSet reporting that node's GPUs (`--scope node`), labelled from the pods there, and one replica
    reporting the cluster-wide allocation, GPU-hours and quotas (`--scope cluster`), which every node would
    otherwise report again. `cluster` labels GPUs no deployment holds.

    NVML needs the node's driver library and device nodes, which the NVIDIA container runtime injects
    when NVIDIA_VISIBLE_DEVICES is set: no GPU is requested (that would take one from the workloads), and
    the pods stay non-root with a read-only root filesystem (the exporter writes nothing)."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(EXPORTER_NAME, SYSTEM_NAMESPACE),
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(EXPORTER_NAME),
        "rules": [
            {"apiGroups": [RAY_GROUP], "resources": [RAYSERVICES], "verbs": ["list"]},
            {"apiGroups": [GROUP], "resources": [CLUSTERS], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(EXPORTER_NAME),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": EXPORTER_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": EXPORTER_NAME, "namespace": SYSTEM_NAMESPACE}],
    }

    def pod(scope: str, env: list[dict[str, Any]], placement: dict[str, Any]) -> dict[str, Any]:
        container = {
            "name": "exporter",
            "image": image,
            "args": [
                *("exporter", "--in-cluster", "--scope", scope),
                *("--addr", "0.0.0.0", "--port", str(EXPORTER_PORT)),
                *("--region", region, "--cluster", cluster),
            ],
            "env": env,
            "ports": [{"containerPort": EXPORTER_PORT, "name": "metrics"}],
            "securityContext": OPERATOR_CONTAINER_SECURITY,
        }
        return {
            "serviceAccountName": EXPORTER_NAME,
            "securityContext": {
                k: v for k, v in OPERATOR_POD_SECURITY.items() if k != "fsGroup"
            },  # no volumes
            **placement,
            "containers": [container],
        }

    gpu_env = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},  # NVML only: no CUDA
    ]
    gpu_nodes = {"nodeSelector": GPU_NODE_SELECTOR, "tolerations": [GPU_TOLERATION]}
    annotations = scrape_annotations(EXPORTER_PORT)
    return [
        account,
        role,
        binding,
        _workload("DaemonSet", EXPORTER_NAME, pod("node", gpu_env, gpu_nodes), annotations),
        _workload("Deployment", ACCOUNTING_NAME, pod("cluster", [], {}), annotations),
    ]


# What kustomize adds to every object of KubeRay's base (its config/rbac and config/manager kustomizations).
KUBERAY_LABELS = {"app.kubernetes.io/name": "kuberay", "app.kubernetes.io/component": "kuberay-operator"}
_CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace"}


def kuberay_operator(image: str, base: list[Manifest]) -> list[Manifest]:
    """KubeRay's operator from its kustomize base (`base`: the documents of toolchain's
    kuberay_operator_manifests), rendered as `kustomize build config/default` would with this namespace and
    image: its own namespace, which the Ray pods' ingress policy admits (operators/manifests.py)."""
    docs: list[Manifest] = [namespace(KUBERAY_NAMESPACE, {})]
    for original in base:
        doc = copy.deepcopy(original)
        meta = doc["metadata"]
        meta["labels"] = {**meta.get("labels", {}), **KUBERAY_LABELS, **PART_OF}
        if doc["kind"] not in _CLUSTER_SCOPED:
            meta["namespace"] = KUBERAY_NAMESPACE
        for subject in doc.get("subjects", []):
            subject["namespace"] = KUBERAY_NAMESPACE
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["image"] = image
        docs.append(doc)
    return docs


def webhook_registration(ca_pem: bytes) -> Manifest:
    """The operator's own webhook configuration, reaching it through its Service instead of a URL."""
    doc = webhook_configuration(f"https://{OPERATOR_NAME}.{SYSTEM_NAMESPACE}.svc", ca_pem)
    for webhook in doc["webhooks"]:
        client = webhook["clientConfig"]
        service = {"namespace": SYSTEM_NAMESPACE, "name": OPERATOR_NAME, "port": 443}
        webhook["clientConfig"] = {
            "service": {**service, "path": urlsplit(client["url"]).path},
            "caBundle": client["caBundle"],
        }
    return doc


def dashboards_configmaps(dashboards: dict[str, str]) -> list[Manifest]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(
                f"grafana-{file.removesuffix('.json')}", SYSTEM_NAMESPACE, GRAFANA_DASHBOARD_LABEL
            ),
            "data": {file: text},
        }
        for file, text in sorted(dashboards.items())
    ]


def rules_configmap(rules: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("sovereign-prometheus-rules", SYSTEM_NAMESPACE, PROMETHEUS_RULE_LABEL),
        "data": dict(sorted(rules.items())),
    }
