"""Rich tables of a bench result: one table per task, graders × metrics, then paired tests."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .runner import BenchResult
from .stats import Metric

# metrics where lower is better
LOWER_IS_BETTER = {"parse_failures"}


def _best(values: dict[str, Metric], metric: str) -> str | None:
    scored = {g: m.value for g, m in values.items() if m.value is not None}
    if len(scored) < 2:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scored, key=scored.get)


def task_table(result: BenchResult, task: str) -> Table:
    by_grader = result.results[task]
    metrics = list(next(iter(by_grader.values())).metrics) if by_grader else []
    table = Table(title=f"{task} · {result.dataset}", title_justify="left", header_style="bold")
    table.add_column("grader", style="cyan", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("s", justify="right", style="dim")
    best = {m: _best({g: r.metrics[m] for g, r in by_grader.items()}, m) for m in metrics}
    for grader, r in by_grader.items():
        cells = [f"[bold green]{r.metrics[m]}[/]" if best[m] == grader else str(r.metrics[m]) for m in metrics]
        table.add_row(grader, *cells, f"{result.timings.get(grader, {}).get(task, 0):.1f}")
    return table


def comparison_table(result: BenchResult) -> Table | None:
    rows = [(task, c) for task, cs in result.comparisons.items() for c in cs]
    if not rows:
        return None
    table = Table(title="paired tests", title_justify="left", header_style="bold")
    for col in ("task", "a", "b", "test", "effect", "p"):
        table.add_column(col, justify="right" if col in ("effect", "p") else "left")
    for task, c in rows:
        if c["test"] == "mcnemar-exact":
            effect = f"{c['on']}: only a {c['only_a']} / only b {c['only_b']}"
        else:
            effect = f"{c['on']}: Δ {c['mean_diff']:+.3f} [{c['low']:+.2f}, {c['high']:+.2f}]"
        p = c["p_value"]
        table.add_row(task, c["a"], c["b"], c["test"], effect, f"[bold]{p:.3g}[/]" if p < 0.05 else f"{p:.3g}")
    return table


def print_report(result: BenchResult, console: Console | None = None) -> None:
    console = console or Console()
    for task in result.tasks:
        console.print(task_table(result, task))
    comp = comparison_table(result)
    if comp is not None:
        console.print(comp)
    console.print("[dim]value (95% interval: Wilson for rates, bootstrap otherwise); best per column in green; s = wall seconds[/]")
