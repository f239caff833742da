"""The sovereign Kubernetes operator (kopf): LlamaDeployment -> RayService when the policy allows, admission
for LlamaDeployments and RayServices, policy drift, and ClusterRequest decisions.

Run it with `sovereign operator run`; `handlers` is the kopf registry;
`reconcile`, `drift` and `facts` the logic.
"""
