"""`sovereign decide FILE|-`, `sovereign decide --cluster clusters/X.yaml --deployment NAME`, or
`sovereign decide --cluster clusters/X.yaml --model M --end-use U`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sovereign.errors import BadInput, Undecided
from sovereign.policy.clusters import load_cluster
from sovereign.policy.decision_input import DecisionInput, parse_decision_inputs
from sovereign.policy.engine import engine_from_env
from sovereign.policy.hints import hints
from sovereign.policy.judgement import Judge, Verdict, utc_today
from sovereign.policy.screening_source import SCREENING_LIST_ENV, Screening
from sovereign.policy.subjects import declared_inputs, model_input, sovereign_cluster
from sovereign.policydata import load_policy_data

_err = Console(stderr=True, soft_wrap=True)  # a hint is one line, however long
_USAGE = (
    "give a decision input FILE (- for stdin), or --cluster FILE with --deployment NAME, "
    "or --cluster FILE with --model and --end-use"
)


def _from_file(file: str) -> tuple[list[DecisionInput], bool]:
    if file == "-":
        return parse_decision_inputs(sys.stdin.read(), "stdin")
    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise BadInput(f"{file}: cannot read the decision input ({exc.strerror})") from None
    return parse_decision_inputs(text, file)


def _from_cluster(
    path: Path,
    deployment: str | None,
    model: str | None,
    end_use: str | None,
    gpus: int | None,
    as_of: str | None,
) -> DecisionInput:
    spec = load_cluster(path)
    if deployment is not None:
        if model is not None or end_use is not None or gpus is not None:
            raise BadInput(f"--deployment takes its model, end use and GPUs from {path}: {_USAGE}")
        declared = declared_inputs(spec, as_of)
        if deployment not in declared:
            names = ", ".join(declared) or "none"
            raise BadInput(
                f"--deployment {deployment}: {path} declares no such deployment (declared: {names})"
            )
        return declared[deployment]
    if model is None or end_use is None:
        raise BadInput(f"--cluster needs --deployment, or --model and --end-use: {_USAGE}")
    return model_input(sovereign_cluster(spec), model, end_use, gpus, as_of)


def _print_hints(inputs: list[DecisionInput], was_array: bool) -> None:
    """Beside the decision, on stderr: advice on a probable slip, after the policy decided on the input as
    given (a hint is never applied)."""
    try:
        data = load_policy_data()
    except BadInput:  # no readable catalogue here: nothing to advise from, and the decision stands
        return
    for index, inp in enumerate(inputs):
        where = f"input[{index}]" if was_array else "input"
        for hint in hints(inp, data):
            _err.print(f"[yellow]hint:[/] {escape(f'{where}.{hint}')}", highlight=False)


def _print_schema(value: bool) -> None:
    if value:
        print(json.dumps(DecisionInput.model_json_schema(), indent=2))
        raise typer.Exit()


def decide(
    file: Annotated[
        str | None, typer.Argument(help="Decision input JSON: one object or an array of them; - reads stdin.")
    ] = None,
    cluster: Annotated[
        Path | None, typer.Option(help="Build the input from a cluster file (clusters/X.yaml) instead.")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="With --cluster: judge this declared deployment, on every fact the file declares."),
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
            envvar=SCREENING_LIST_ENV,
            help="Denied-party list (trade.gov CSL JSON) to screen operators.",
        ),
    ] = None,
    schema: Annotated[
        bool,
        typer.Option(
            "--schema",
            callback=_print_schema,
            is_eager=True,
            help="Print the decision input's JSON Schema and exit.",
        ),
    ] = False,
) -> None:
    """Decide whether a cluster may host a model for an end use; the decision is JSON on stdout.

    The input: cluster, model, end_use, as_of (every field: --schema; examples: policies/examples/),
    in snake_case or in camelCase (endUse) as the Kubernetes objects write them.

    Exit 0 when allowed, 1 when denied (any, for an array), 2 for bad input or when no engine could
    decide (no verified bundle: build one with `sovereign bundle build`; OPA server unreachable).

    Asks the OPA server at $SOVEREIGN_OPA_URL when set, else evaluates the signed bundle in-process.
    """
    cluster_only = {
        "--deployment": deployment,
        "--model": model,
        "--end-use": end_use,
        "--gpus": gpus,
        "--as-of": as_of,
    }
    if cluster is not None:
        if file is not None:
            raise BadInput(f"both FILE and --cluster given: {_USAGE}")
        inputs, was_array = [_from_cluster(cluster, deployment, model, end_use, gpus, as_of)], False
    elif given := [flag for flag, value in cluster_only.items() if value is not None]:
        raise BadInput(f"{', '.join(given)} only apply with --cluster: {_USAGE}")
    elif file is None:
        raise BadInput(_USAGE)
    else:
        inputs, was_array = _from_file(file)

    # The list must be current at the latest decision date among the inputs (an input without one is
    # decided today, as the Judge decides it).
    decided_on = max(inp.as_of or utc_today() for inp in inputs)
    judge = Judge(engine_from_env(), Screening.advisory(screening_list, decided_on))
    judgements = judge.judge_many(inputs) if was_array else [judge.judge(inputs[0])]
    decisions = [j.decision() for j in judgements]
    print(json.dumps(decisions if was_array else decisions[0], indent=2))
    _print_hints(inputs, was_array)
    if undecided := [j for j in judgements if j.verdict is Verdict.UNDECIDED]:
        raise Undecided("; ".join(dict.fromkeys(j.message for j in undecided)))
    raise typer.Exit(0 if all(j.allowed for j in judgements) else 1)
