"""The CycloneDX SBOM of an image: every package its lock installs, with the lock's version and hashes.

Generated from the lock, not from an installed environment: the lock is what `pip install
--require-hashes` puts into the image, so the SBOM is known before (and without) a build. The image is the
BOM's subject (metadata.component); each locked package is a library component with its PyPI purl and the
SHA-256 of every distribution file the lock accepts for that version.
"""

from __future__ import annotations

from pathlib import Path

from sovereign import __version__, toolchain
from sovereign.errors import BadInput
from sovereign.supply.images import DEFAULT_REGISTRY, IMAGES
from sovereign.supply.lock import read_lock


def image_sbom(image: str, root: Path = toolchain.REPO_ROOT, registry: str = DEFAULT_REGISTRY) -> str:
    """CycloneDX 1.6 JSON for `image` (a name of IMAGES); BadInput for an unknown one."""
    # Imported here, not with the module: cyclonedx and its schema validator (jsonschema's format grammars)
    # take 2-3 s of CPU to import, which every importer of the air-gap export would pay.
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    spec = IMAGES.get(image)
    if spec is None:
        raise BadInput(f"--image {image}: no such image; images: {', '.join(IMAGES)}")
    pins = read_lock(root / spec.lock)
    subject = Component(
        name=f"sovereign-{spec.name}",
        version=__version__,
        type=ComponentType.CONTAINER,
        bom_ref=spec.reference(registry),
        description=spec.description,
        properties=[Property(name="sovereign:lock", value=spec.lock)],
    )
    components = [
        Component(
            name=pin.name,
            version=pin.version,
            type=ComponentType.LIBRARY,
            bom_ref=f"pypi/{pin.name}@{pin.version}",
            purl=PackageURL(type="pypi", name=pin.name, version=pin.version),
            hashes=[
                HashType(alg=HashAlgorithm.SHA_256, content=h.removeprefix("sha256:")) for h in pin.hashes
            ],
        )
        for pin in sorted(pins.values(), key=lambda p: p.name)
    ]
    bom = Bom(components=components)
    bom.metadata.component = subject
    for component in components:
        bom.register_dependency(subject, [component])
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    schema = SchemaVersion.V1_6
    if (error := JsonStrictValidator(schema).validate_str(text)) is not None:
        raise AssertionError(
            f"the SBOM of {image} does not validate against CycloneDX {schema.to_version()}: {error}"
        )
    return text
