"""Rich tables of a bench result: one table per task (rows as the task declares them), then paired tests."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lorag_harness.reports.common import VALUES_NOTE, best, columns, effect, rows
from lorag_harness.evaluation.runner import BenchResult
from lorag_harness.api.types import LEGACY_LOWER_IS_BETTER

# kept for older callers: metric directions now live on each Metric (``Metric.better``)
LOWER_IS_BETTER = LEGACY_LOWER_IS_BETTER


def task_table(result: BenchResult, task: str) -> Table:
    table_rows = rows(result, task)
    metrics = columns(table_rows)
    table = Table(title=f"{task} · {result.dataset}", title_justify="left", header_style="bold")
    table.add_column("grader", style="cyan", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("s", justify="right", style="dim")
    top = {m: best(table_rows, m) for m in metrics}
    for r in table_rows:
        cells = [("–" if m not in r.metrics else f"[bold green]{r.metrics[m]}[/]" if top[m] == r.label else str(r.metrics[m]))
                 for m in metrics]
        table.add_row(r.label, *cells, "" if r.seconds is None else f"{r.seconds:.1f}")
    return table


def comparison_table(result: BenchResult) -> Table | None:
    found = [(task, c) for task, cs in result.comparisons.items() for c in cs]
    if not found:
        return None
    table = Table(title="paired tests", title_justify="left", header_style="bold")
    for col in ("task", "a", "b", "test", "effect", "p"):
        table.add_column(col, justify="right" if col in ("effect", "p") else "left")
    for task, c in found:
        p = c["p_value"]
        table.add_row(task, c["a"], c["b"], c["test"], effect(c), f"[bold]{p:.3g}[/]" if p < 0.05 else f"{p:.3g}")
    return table


def print_report(result: BenchResult, console: Console | None = None) -> None:
    console = console or Console()
    for task in result.tasks:
        console.print(task_table(result, task))
    comp = comparison_table(result)
    if comp is not None:
        console.print(comp)
    console.print(f"[dim]{VALUES_NOTE}; best per column in green; s = wall seconds[/]")
