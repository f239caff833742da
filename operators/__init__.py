"""sovereign's Kubernetes side: the CRDs, RBAC and examples, the object builders every enforcement point
shares (`operators.manifests`), and the kopf operator (`operators.sovereign_operator`)."""
