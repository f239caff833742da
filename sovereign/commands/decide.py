"""`sovereign decide FILE|-` or `sovereign decide --cluster clusters/X.yaml --model M --end-use U`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sovereign.errors import BadInput, Undecided
from sovereign.policy.clusters import load_cluster
from sovereign.policy.decision_input import DecisionInput, parse_decision_inputs
from sovereign.policy.engine import BUNDLE_UNVERIFIED, ENGINE_UNAVAILABLE, engine_from_env
from sovereign.policy.screening import ScreeningList

_USAGE = "give a decision input FILE (- for stdin), or --cluster FILE with --model and --end-use"


def _from_file(file: str) -> tuple[list[DecisionInput], bool]:
    if file == "-":
        return parse_decision_inputs(sys.stdin.read(), "stdin")
    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise BadInput(f"{file}: cannot read the decision input ({exc.strerror})") from None
    return parse_decision_inputs(text, file)


def decide(
    file: Annotated[
        str | None, typer.Argument(help="Decision input JSON: one object or an array of them; - reads stdin.")
    ] = None,
    cluster: Annotated[
        Path | None, typer.Option(help="Build the input from a cluster file (clusters/X.yaml) instead.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="With --cluster: the model, e.g. llama-3.3-70b-instruct.")
    ] = None,
    end_use: Annotated[
        str | None, typer.Option(help="With --cluster: commercial, research, defense...")
    ] = None,
    gpus: Annotated[int | None, typer.Option(help="With --cluster: GPUs the deployment asks for.")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="With --cluster: decide as of YYYY-MM-DD (default today).")
    ] = None,
    screening_list: Annotated[
        Path | None,
        typer.Option(
            envvar="SOVEREIGN_SCREENING_LIST",
            help="Denied-party list (trade.gov CSL JSON) to screen operators.",
        ),
    ] = None,
) -> None:
    """Decide whether a cluster may host a model for an end use; the decision is JSON on stdout.

    Exit 0 when allowed, 1 when denied (any, for an array), 2 for bad input or when no engine could
    decide (no verified bundle: build one with `sovereign bundle build`; OPA server unreachable).

    Asks the OPA server at $SOVEREIGN_OPA_URL when set, else evaluates the signed bundle in-process.
    """
    cluster_only = {"--model": model, "--end-use": end_use, "--gpus": gpus, "--as-of": as_of}
    if cluster is not None:
        if file is not None:
            raise BadInput(f"both FILE and --cluster given: {_USAGE}")
        if model is None or end_use is None:
            raise BadInput(f"--cluster needs --model and --end-use: {_USAGE}")
        inputs, was_array = [load_cluster(cluster).decision_input(model, end_use, gpus, as_of)], False
    elif given := [flag for flag, value in cluster_only.items() if value is not None]:
        raise BadInput(f"{', '.join(given)} only apply with --cluster: {_USAGE}")
    elif file is None:
        raise BadInput(_USAGE)
    else:
        inputs, was_array = _from_file(file)

    screening = ScreeningList.load(screening_list) if screening_list else None
    policy_inputs = [
        inp.policy_input(screening.screen(inp.cluster.operator.name) if screening else []) for inp in inputs
    ]
    engine = engine_from_env()
    decisions = engine.decide_many(policy_inputs) if was_array else [engine.decide(policy_inputs[0])]
    print(json.dumps(decisions if was_array else decisions[0], indent=2))
    failed = [
        [v["message"] for v in d["violations"] if v["code"] in (BUNDLE_UNVERIFIED, ENGINE_UNAVAILABLE)]
        for d in decisions
    ]
    if all(failed):
        raise Undecided("; ".join(dict.fromkeys(message for messages in failed for message in messages)))
    raise typer.Exit(0 if all(d["allow"] is True for d in decisions) else 1)
