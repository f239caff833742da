"""Pulumi for sovereign: one stack per sovereign region, the policy enforced at preview.

`program.py` is the Pulumi program (run inline by `sovereign up|preview|destroy`, or by `pulumi up` through
`__main__.py`), `region.py` the SovereignRegion component, `kube_object.py` the one resource type for every
Kubernetes object, `policy_pack/` the preview-time enforcement point. `monitoring/` belongs to observability.
"""
