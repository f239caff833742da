"""`sovereign images list | build | sbom`: the operator and serving images (images/*.Containerfile).

`build` (`make images`) needs a container builder (docker with a running daemon, podman or buildah): with
none it says which to install in one line (exit 2). `sbom` needs nothing: it is made from the image's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sovereign.supply.images import DEFAULT_REGISTRY, IMAGES, build_images

app = typer.Typer(no_args_is_help=True, help="The operator and serving images, their locks and SBOMs.")
_out = Console(soft_wrap=True, highlight=False)
RegistryOpt = Annotated[
    str, typer.Option(help="Registry the images are tagged for (the stacks' operatorImage/servingImage).")
]


@app.command(name="list")
def list_(registry: RegistryOpt = DEFAULT_REGISTRY) -> None:
    """Each image: its reference, Containerfile and lock."""
    for spec in IMAGES.values():
        _out.print(f"{spec.reference(registry)}  {spec.containerfile}  {spec.lock}")


@app.command()
def build(registry: RegistryOpt = DEFAULT_REGISTRY) -> None:
    """Build every image with the first container builder found; print each digest."""
    build_images(registry, progress=lambda line: _out.print(escape(line)))


@app.command()
def sbom(
    image: Annotated[str, typer.Argument(help=f"The image: {', '.join(IMAGES)}.")],
    out: Annotated[Path | None, typer.Option(help="Write the SBOM here (default: standard output).")] = None,
) -> None:
    """The image's CycloneDX 1.6 SBOM from its lock: every package, version and hash it installs."""
    from sovereign.supply.sbom import image_sbom

    text = image_sbom(image)
    if out is None:
        print(text)
    else:
        out.write_text(text)
        _out.print(f"SBOM of {image}: {escape(str(out))}")
