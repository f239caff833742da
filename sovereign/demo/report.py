"""What the demo prints: a rule per step, indented progress lines, and a `passed:`/`FAILED:` line per
checked outcome, tallied at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console


@dataclass(frozen=True)
class DemoCheck:
    name: str
    ok: bool
    detail: str


@dataclass
class DemoReport:
    console: Console
    outcomes: list[DemoCheck] = field(default_factory=list)

    def title(self, text: str) -> None:
        self.console.rule(f"[bold]{text}")

    def say(self, line: str) -> None:
        self.console.print(f"  {line}", highlight=False, markup=False)

    def expect(self, name: str, ok: bool, detail: str = "") -> None:
        self.outcomes.append(DemoCheck(name, ok, detail))
        mark = "[green]passed[/]" if ok else "[red]FAILED[/]"
        self.console.print(f"  {mark}: {name}" + (f" — {detail}" if detail else ""), highlight=False)

    @property
    def failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    def tally(self) -> None:
        passed = len(self.outcomes) - self.failed
        self.console.print(f"demo: {passed} passed, {self.failed} failed", highlight=False)
