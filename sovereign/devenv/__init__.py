"""The local control plane: etcd + kube-apiserver + OPA on loopback, the envtest pattern without containers."""
