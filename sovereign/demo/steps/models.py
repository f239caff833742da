"""Step: the tiny local Llama checkpoints and the signed policy bundle the control planes' OPAs serve."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.policy.bundle import build_bundle


def build_models(demo: DemoContext) -> None:
    from sovereign.models.tiny import build_all  # transformers (the serving extra): slow to import

    for model, folder, built in build_all():
        demo.weights[model.stands_in_for] = folder
        state = "built" if built else "up to date"
        demo.report.say(f"{model.name}: {state} at {folder} (stands in for {model.stands_in_for})")
    bundle = build_bundle(progress=demo.report.say)
    demo.report.say(f"policy bundle revision {bundle.revision}, signed ({bundle.rego})")
