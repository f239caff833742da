"""Advice printed beside a decision, never part of it: what the user probably meant by a model the catalogue
does not know, or by a country code ISO 3166-1 does not assign.

The policy decides on the input as given (an unknown model is denied UNKNOWN_MODEL, `UK` is no country it
knows): a hint only saves a second look, so nothing here is handed to the policy or changes its answer.
"""

from __future__ import annotations

from collections.abc import Iterator

from rapidfuzz import fuzz, process

from sovereign.policy.decision_input import DecisionInput
from sovereign.policydata import PolicyData

# Below this similarity (0-100) a catalogue name is a different model, not a typo of it; names this close
# to the best one are as likely meant (a typo of "3.2" is as near "3.1" as "3.3"), so each is offered.
_MIN_SIMILARITY = 85.0
_AS_LIKELY = 2.0
_MOST_OFFERED = 3


def _model_hint(model: str, data: PolicyData) -> str | None:
    if data.model(model) is not None:
        return None
    names = {variant.id: variant.id for variant in data.models} | data.aliases
    # WRatio also weighs a name that is part of a longer one (llama-3-8b in meta-llama-3-8b).
    found = process.extract(model.lower(), list(names), scorer=fuzz.WRatio, score_cutoff=_MIN_SIMILARITY)
    if not found:
        return None
    best = found[0][1]
    close = (names[name] for name, score, _ in found if score > best - _AS_LIKELY)
    meant = list(dict.fromkeys(close))[:_MOST_OFFERED]
    return f"`{model}` is not in the catalogue: did you mean {' or '.join(f'`{m}`' for m in meant)}?"


def _countries(inp: DecisionInput) -> Iterator[tuple[str, str | None]]:
    cluster, operator = inp.cluster, inp.cluster.operator
    yield "cluster.country", cluster.country
    yield "cluster.weights_country", cluster.weights_country
    yield "cluster.operator.country", operator.country
    yield "cluster.operator.sponsor_country", operator.sponsor_country
    yield "cluster.operator.principal_place_of_business", operator.principal_place_of_business


def hints(inp: DecisionInput, data: PolicyData) -> list[str]:
    """One line per probable slip in `inp`, each naming its field; empty when nothing looks mistyped."""
    found = []
    if model := _model_hint(inp.model, data):
        found.append(f"model: {model}")
    for field, code in _countries(inp):
        if code is not None and (meant := data.not_iso.get(code)) is not None:
            found.append(f"{field}: `{code}` is not ISO 3166-1: did you mean `{meant.iso}`?")
    return found
