"""`sovereign models build | sign | verify`: the tiny local checkpoints, signing weights (OpenSSF model
signing), and the weights check serving runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sovereign.errors import ToolMissing
from sovereign.models.signing import DEV_SIGNER, sign_checkpoint

app = typer.Typer(
    no_args_is_help=True,
    help="Build tiny local Llama checkpoints; sign weights; verify weights against the catalogue.",
)


def _needs_serving_extra() -> None:
    try:
        import safetensors  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise ToolMissing(
            "the serving stack is not installed: run .venv/bin/pip install -e '.[serving]'"
        ) from None


@app.command()
def build(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to build (default: $SOVEREIGN_MODELS_DIR or ~/.cache/sovereign/models)."
        ),
    ] = None,
) -> None:
    """Build the tiny text Llama and the tiny Mllama (vision) checkpoints, offline; skip current ones."""
    _needs_serving_extra()
    from sovereign.models.tiny import build_all, models_dir

    root = directory or models_dir()
    for model, folder, built in build_all(root):
        state = "built" if built else "up to date"
        print(f"{model.name:<20} {state:<10} {folder}  (stands in for {model.stands_in_for})")
    print(f"models folder: {root}")


@app.command()
def sign(
    folder: Annotated[Path, typer.Argument(help="A checkpoint folder: every file in it is signed.")],
    identity: Annotated[
        str, typer.Option(help="The signer identity deployments name in spec.weights.signer.")
    ] = DEV_SIGNER,
    key: Annotated[
        Path | None,
        typer.Option(
            help="EC private key (PEM) to sign with (default: the identity's key in the state dir)."
        ),
    ] = None,
) -> None:
    """Sign every file of a checkpoint (OpenSSF model signing, a Sigstore bundle in FOLDER/model.sig).

    With no --key, the identity's key is created under the state dir on first use and its public key is
    published to the trust folder the serving replicas verify with ($SOVEREIGN_WEIGHTS_SIGNERS).
    """
    signature = sign_checkpoint(folder, identity, key)
    print(f"signed {folder} as {identity}: {signature}")


@app.command()
def verify(
    folder: Annotated[
        Path, typer.Argument(help="A Hugging Face checkpoint folder (config.json + *.safetensors).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="The catalogue id the weights are declared as.")
    ],
    cluster: Annotated[
        Path, typer.Option(help="The cluster file (clusters/X.yaml) of the deployment that serves them.")
    ],
    end_use: Annotated[str, typer.Option(help="The deployment's end use: commercial, research, defense...")],
    signer: Annotated[
        str | None,
        typer.Option(help="Who must have signed the weights (a deployment's spec.weights.signer)."),
    ] = None,
) -> None:
    """Have the policy judge the weights as the declared variant on that cluster, as a serving replica
    does before loading them (modality, size: WEIGHTS_MISMATCH; with --signer, the signature over every
    file: WEIGHTS_SIGNATURE_INVALID); print their digests.

    Exit 0 when the policy allows them, 1 when it refuses (the server would refuse to start), 2 for bad
    input or no decision.
    """
    _needs_serving_extra()
    from serving.weights import verify_weights
    from sovereign.policy.clusters import load_cluster
    from sovereign.policy.engine import engine_from_env
    from sovereign.policy.judgement import Judge
    from sovereign.policy.subjects import model_input, sovereign_cluster

    judged = model_input(sovereign_cluster(load_cluster(cluster)), model, end_use)
    judged = judged.model_copy(update={"weights_signer": signer})
    print(json.dumps(verify_weights(folder, Judge(engine_from_env()), judged).record(), indent=2))
