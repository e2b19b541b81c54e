"""Write a bench result to a file: json, markdown or html."""
from __future__ import annotations

import json
from pathlib import Path

from lorag_harness.errors import LoragError
from lorag_harness.reports.common import VALUES_NOTE, columns, effect, rows
from lorag_harness.evaluation.runner import BenchResult

SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}

__all__ = ["SUFFIXES", "effect", "markdown", "render", "write_report"]


def markdown(result: BenchResult) -> str:
    lines = [f"# lorag-harness report · {result.dataset}", ""]
    lines += [f"> **{a}**\n" for a in result.alerts]
    for task in result.tasks:
        table_rows = rows(result, task)
        metrics = columns(table_rows)
        lines += [f"## {task}", "", "| grader | " + " | ".join(metrics) + " | s |", "|---|" + "---:|" * (len(metrics) + 1)]
        for r in table_rows:
            cells = [r.metrics[m].plain() if m in r.metrics else "–" for m in metrics]
            lines.append(f"| {r.label} | " + " | ".join(cells) + f" | {'' if r.seconds is None else f'{r.seconds:.1f}'} |")
        lines.append("")
    comps = [(t, c) for t, cs in result.comparisons.items() for c in cs]
    if comps:
        lines += ["## Paired tests", "", "| task | a | b | test | effect | p |", "|---|---|---|---|---|---:|"]
        lines += [f"| {t} | {c['a']} | {c['b']} | {c['test']} | {effect(c)} | {c['p_value']:.3g} |" for t, c in comps]
        lines.append("")
    lines.append(f"Values: {VALUES_NOTE}.")
    return "\n".join(lines) + "\n"


def render(result: BenchResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str)
    if fmt == "markdown":
        return markdown(result)
    if fmt == "html":
        from lorag_harness.reports.html import html

        return html(result)
    raise LoragError(f"unknown report format {fmt!r}: json, markdown or html")


def write_report(result: BenchResult, path: Path, fmt: str | None = None) -> Path:
    """Write atomically, so that an interrupted write never leaves half a report."""
    text = render(result, fmt or SUFFIXES.get(path.suffix.lower(), "json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
