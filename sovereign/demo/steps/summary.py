"""Step: a table of what each region's operator admitted and what preview refused, every admission checked."""

from __future__ import annotations

from rich.table import Table

from sovereign.demo.context import DemoContext
from sovereign.vocabulary import CONDITION_POLICY_COMPLIANT as POLICY_COMPLIANT


def summarise(demo: DemoContext) -> None:
    table = Table("region", "deployment", "model", "end use", "decision", "codes", "citation")
    for region in demo.regions:
        for item in region.llama_deployments():
            status = item.get("status") or {}
            violations = status.get("violations") or []
            compliant = next(
                (c for c in status.get("conditions", []) if c.get("type") == POLICY_COMPLIANT), {}
            )
            allowed = compliant.get("status") == "True"
            table.add_row(
                region.plan.region,
                item["metadata"]["name"],
                item["spec"]["model"],
                item["spec"]["endUse"],
                "[green]admitted[/]" if allowed else "[red]refused[/]",
                ", ".join(v["code"] for v in violations) or "-",
                (violations[0]["citation"][:60] if violations else "-"),
            )
            demo.report.expect(f"{region.plan.region}: {item['metadata']['name']} admitted", allowed)
        if region.plan.refused_file:
            table.add_row(
                region.plan.region,
                region.plan.refused_file.removesuffix(".yaml"),
                "(preview)",
                "",
                "[red]refused at preview[/]",
                ", ".join(region.plan.expected_refusal),
                "Llama 3.2 AUP",
            )
    demo.report.console.print(table)
