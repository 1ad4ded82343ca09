"""Run every bench script, one after another, and print one table: figure, measured,
target, pass/fail. ``make bench`` runs the full sizes, ``make bench-quick`` the small ones.

Each script runs as its own process (as it would alone) and ends with a JSON line of
figures, read here; its progress lines are shown while it runs. A script that fails is a
row of its own, and makes the exit status 1; a missed target does not (it is a figure).

    .venv/bin/python bench/run.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

BENCH = Path(__file__).resolve().parent
SCRIPTS = {
    "auth_overhead": "API-key authentication overhead",
    "inbound": "inbound webhook ingestion",
    "pagination": "pagination depth",
    "broadcasts": "broadcast rate",
    "webhooks": "outbound webhook fan-out",
}


@dataclass
class Outcome:
    name: str
    seconds: float = 0.0
    returncode: int | None = None
    figures: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.figures)


def run_script(name: str, quick: bool, progress: Progress) -> Outcome:
    """Run one script, showing its progress lines; its figures from its last JSON line."""
    outcome = Outcome(name)
    task = progress.add_task(f"{name}: starting", total=None)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(BENCH / f"{name}.py"), *(["--quick"] if quick else [])],
        cwd=BENCH,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stdout_lines: list[str] = []
    reader = threading.Thread(target=lambda: stdout_lines.extend(process.stdout or []))
    reader.start()
    for line in process.stderr:
        line = line.rstrip()
        if line:
            outcome.stderr_tail = [*outcome.stderr_tail[-19:], line]
            progress.update(task, description=f"{name}: {line.strip().lstrip('… ')}"[:100])
    reader.join()
    outcome.returncode = process.wait()
    outcome.seconds = time.monotonic() - started
    for line in reversed(stdout_lines):
        if line.startswith("{"):
            outcome.figures = json.loads(line)["figures"]
            break
    mark = "done" if outcome.ok else f"FAILED (exit {outcome.returncode})"
    progress.update(task, description=f"{name}: {mark}", completed=1, total=1)
    progress.stop_task(task)
    return outcome


def _measured(figure: dict[str, Any]) -> str:
    value, unit = figure["measured"], figure["unit"]
    text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def _result(passed: bool | None) -> str:
    return {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "-"}[passed]


def table(outcomes: list[Outcome], quick: bool) -> Table:
    mode = "quick mode: small sizes, indicative only" if quick else "full mode"
    result = Table(title=f"wacrm benchmarks ({mode})")
    for column in ("figure", "measured", "target", "result"):
        result.add_column(column, justify="right" if column == "measured" else "left")
    for outcome in outcomes:
        if not outcome.ok:
            result.add_row(f"{outcome.name}.py", "—", "runs to the end", "[red]FAILED[/]")
            continue
        for figure in outcome.figures:
            target = figure["target"] or "(none)"
            result.add_row(figure["figure"], _measured(figure), target, _result(figure["passed"]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every script in --quick mode")
    parser.add_argument("--only", nargs="+", choices=sorted(SCRIPTS), help="these scripts only")
    args = parser.parse_args()
    names = [name for name in SCRIPTS if not args.only or name in args.only]

    console = Console()
    started = time.monotonic()
    outcomes = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for number, name in enumerate(names, 1):
            console.log(f"[{number}/{len(names)}] {name}.py: {SCRIPTS[name]}")
            outcomes.append(run_script(name, args.quick, progress))
    for outcome in outcomes:
        if not outcome.ok:
            failed = f"{outcome.name}.py failed (exit {outcome.returncode})"
            console.print(f"[red]{failed}; its last lines:")
            for line in outcome.stderr_tail:
                console.print(f"  {line}", markup=False, highlight=False)
    console.print(table(outcomes, args.quick))
    timings = ", ".join(f"{o.name} {o.seconds:.0f} s" for o in outcomes)
    console.print(f"total {time.monotonic() - started:.0f} s ({timings})")
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
