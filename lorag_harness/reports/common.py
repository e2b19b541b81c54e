"""What every report format shares: rows, best values by each metric's direction, paired-test
effects, and the charts and tables a task class declares.

A task class (the factory registered for the task name) may define classmethods:

- ``report_rows(results) -> [(label, {metric: Metric}, timing)]``: the table's rows (default: one
  per grader); ``timing`` is a grader name (its wall time is shown) or seconds or None;
- ``charts(results) -> [(title, matplotlib Figure)]``: figures for the HTML report;
- ``tables(results) -> [(title, header, rows)]``: extra tables (rows of strings) for the HTML report.

``results`` is ``{grader: TaskResult}`` for that task."""
from __future__ import annotations

from dataclasses import dataclass

from lorag_harness.evaluation.stats import Metric

VALUES_NOTE = "value (95% interval: Wilson for rates, bootstrap otherwise)"


@dataclass
class Row:
    label: str
    metrics: dict[str, Metric]
    seconds: float | None


def task_class(name: str, pm=None):
    """The class registered for task ``name`` (None if unknown here or registered by a function)."""
    from lorag_harness.api import registry

    try:
        entry = registry.tasks(pm).get(name)
    except Exception:  # a broken plug-in must not stop a report from being written
        return None
    return entry.factory if entry is not None and isinstance(entry.factory, type) else None


def rows(result, task: str) -> list[Row]:
    by_grader = result.results.get(task, {})
    timings = result.timings
    hook = getattr(task_class(task), "report_rows", None)
    raw = hook(by_grader) if hook else [(g, r.metrics, g) for g, r in by_grader.items()]
    out = []
    for label, metrics, timing in raw:
        seconds = timings.get(timing, {}).get(task) if isinstance(timing, str) else timing
        out.append(Row(label, metrics, seconds))
    return out


def columns(table_rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for r in table_rows:
        seen.update(dict.fromkeys(r.metrics))
    return list(seen)


def best(table_rows: list[Row], metric: str) -> str | None:
    """Label of the best row for ``metric`` by its direction. None: no direction, fewer than two
    values, a tie for the best value, or a recall won by a grader whose precision is no better than
    the prevalence (one that says "relevant" to everything has recall 1.000 for free)."""
    scored = {r.label: r.metrics[metric] for r in table_rows if metric in r.metrics and r.metrics[metric].value is not None}
    if len(scored) < 2:
        return None
    direction = next(iter(scored.values())).better
    if direction is None:
        return None
    pick = min if direction == "lower" else max
    winner = pick(scored, key=lambda k: scored[k].value)
    if sum(1 for m in scored.values() if m.value == scored[winner].value) > 1:
        return None
    if metric.startswith("recall") and _no_better_than_yes(next(r for r in table_rows if r.label == winner)):
        return None
    return winner


def _no_better_than_yes(row: Row) -> bool:
    """Precision at or below the share of relevant pairs: what saying "relevant" to every pair gets."""
    precision, rate = row.metrics.get("precision"), row.metrics.get("positive_rate")
    if precision is None or rate is None or precision.value is None or rate.value is None:
        return False
    return precision.value <= rate.value + 1e-12


def effect(c: dict) -> str:
    """One line describing a paired comparison ``c`` (from a task's ``compare``)."""
    if c["test"] == "mcnemar-exact":
        return f"{c['on']}: only a {c['only_a']} / only b {c['only_b']}"
    if c["test"] == "kendall-tau":
        if c.get("tau") is None:
            return f"{c['on']}: τ undefined (systems tied) over {c['n_systems']} systems"
        return f"{c['on']}: τ {c['tau']:+.3f} over {c['n_systems']} systems"
    return f"{c['on']}: Δ {c['mean_diff']:+.3f} ({c['low']:+.2f}–{c['high']:+.2f})"


def charts(result, task: str) -> list:
    hook = getattr(task_class(task), "charts", None)
    by = result.results.get(task, {})
    return list(hook(by)) if hook and by else []


def tables(result, task: str) -> list:
    hook = getattr(task_class(task), "tables", None)
    by = result.results.get(task, {})
    return list(hook(by)) if hook and by else []
