"""The ML-BOM of a region: one CycloneDX machine-learning-model component per deployment, with its
catalogue variant, licence, where it runs, and the digest of every weights file the data plane verified."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense
from cyclonedx.output.json import JsonV1Dot6

from sovereign.policydata import PolicyData


def ml_bom(
    region: str,
    deployments: list[Mapping[str, Any]],
    weights: list[Mapping[str, Any]],
    data: PolicyData,
) -> str:
    """CycloneDX 1.6 JSON: what `deployments` run, each with the file digests recorded for its RayService."""
    components = []
    for deployment in deployments:
        meta, spec = deployment["metadata"], deployment["spec"]
        where = f"{meta['namespace']}/{meta['name']}"
        variant = data.model(str(spec.get("model")))
        files = [w for w in weights if w["rayservice"] == where]
        component = Component(
            name=str(spec.get("model")),
            type=ComponentType.MACHINE_LEARNING_MODEL,
            bom_ref=f"{spec.get('clusterRef')}/{where}",
            version=variant.variant if variant else None,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=w["sha256"]) for w in files],
            properties=[
                Property(name="sovereign:region", value=region),
                Property(name="sovereign:cluster", value=str(spec.get("clusterRef"))),
                Property(name="sovereign:endUse", value=str(spec.get("endUse"))),
                Property(name="sovereign:phase", value=str((deployment.get("status") or {}).get("phase"))),
                *(Property(name="sovereign:weightsFile", value=f"{w['file']} {w['sha256']}") for w in files),
            ],
        )
        if variant is not None:
            family = data.licences[variant.licence]
            component.licenses.add(DisjunctiveLicense(name=family.name, url=XsUri(str(family.licence_url))))
            component.external_references.add(
                ExternalReference(
                    type=ExternalReferenceType.DISTRIBUTION,
                    url=XsUri(f"https://huggingface.co/{variant.hf_repo}"),
                )
            )
        components.append(component)
    return JsonV1Dot6(Bom(components=components)).output_as_string(indent=2)
