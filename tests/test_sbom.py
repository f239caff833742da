"""The CycloneDX SBOM of each image lists exactly its lock's packages, with the lock's versions and hashes,
and validates against the CycloneDX 1.6 schema (the library's own validator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign import cli, toolchain
from sovereign.errors import BadInput
from sovereign.supply.images import IMAGES
from sovereign.supply.lock import read_lock
from sovereign.supply.sbom import image_sbom


@pytest.mark.slow
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_sbom_lists_exactly_the_locked_packages_with_versions_and_hashes(image: str) -> None:
    # Imported here: both test-fast workers collect this module, only one needs cyclonedx (2-3 s to import).
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = image_sbom(image)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    subject = doc["metadata"]["component"]
    assert subject["type"] == "container" and subject["bom-ref"] == IMAGES[image].reference()
    pins = read_lock(toolchain.REPO_ROOT / IMAGES[image].lock)
    listed = {
        c["name"]: (c["version"], {f"sha256:{h['content']}" for h in c["hashes"]}, c["purl"])
        for c in doc["components"]
    }
    assert listed == {
        name: (pin.version, set(pin.hashes), f"pkg:pypi/{name}@{pin.version}") for name, pin in pins.items()
    }
    assert all(c["type"] == "library" for c in doc["components"])
    (dependencies,) = [d for d in doc["dependencies"] if d["ref"] == subject["bom-ref"]]
    assert len(dependencies["dependsOn"]) == len(pins)


@pytest.mark.slow
def test_the_cli_writes_the_sbom_and_refuses_an_unknown_image(tmp_path: Path) -> None:
    out = tmp_path / "serving.cdx.json"
    done = CliRunner().invoke(cli.app, ["images", "sbom", "serving", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert json.loads(out.read_text())["metadata"]["component"]["name"] == "sovereign-serving"
    with pytest.raises(BadInput, match="--image gpu: no such image; images: operator, serving"):
        image_sbom("gpu")
