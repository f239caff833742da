"""The local control plane: etcd + kube-apiserver + OPA on loopback (envtest pattern, no containers)."""
