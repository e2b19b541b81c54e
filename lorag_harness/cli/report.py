"""``lorag report``: re-render saved results without re-running, or compare two of them."""
from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from lorag_harness.cli.output import console
from lorag_harness.errors import LoragError

FORMATS = ("json", "markdown", "html")


def _format(out: str | None, fmt: str | None) -> str | None:
    from lorag_harness.reports.files import SUFFIXES

    if out is None:
        return fmt
    if fmt is None and Path(out).suffix.lower() not in SUFFIXES:
        raise LoragError(f"--out {out}: cannot tell the format from the suffix {Path(out).suffix or '(none)'}: "
                         "name it .json, .md or .html, or pass --format")
    return fmt or SUFFIXES[Path(out).suffix.lower()]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def compare_table(comp) -> Table:
    from lorag_harness.reports.compare import HEADER, table_rows

    table = Table(title=f"A: {comp.a}  ·  B: {comp.b}", title_justify="left", header_style="bold")
    for col in HEADER:
        table.add_column(col, justify="right" if col in ("A", "B", "Δ (B − A)") else "left")
    for r, row in zip(comp.rows, table_rows(comp)):
        style = {"better": "green", "worse": "red"}.get(r["change"] or "")
        delta = f"[{style}]{escape(row[5])}[/]" if style else escape(row[5])
        test = f"[bold]{escape(row[6])}[/]" if r["test"] is not None and r["test"]["p_value"] < 0.05 else escape(row[6])
        table.add_row(*map(escape, row[:5]), delta, test)
    return table


@click.command()
@click.argument("results", required=False, type=click.Path(dir_okay=True))
@click.option("--compare", "pair", nargs=2, type=click.Path(), default=None, metavar="A.json B.json",
              help="Compare two results files (bench --out .json, pytest baselines or folders of them) metric "
                   "by metric, with paired tests where both hold per-unit data")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the report here (.html, .md, .json)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: from the --out suffix")
@click.option("--save-runs", type=click.Path(file_okay=False), default=None,
              help="Write the rerank task's TREC runs and qrels from the results (as bench --save-runs)")
def report(results, pair, out, fmt, save_runs):
    """Re-render RESULTS.json (from lorag bench --out x.json) as HTML, markdown or tables, without
    re-running; or --compare A.json B.json."""
    from lorag_harness.evaluation.preflight import check_output
    from lorag_harness.reports.compare import compare, load_results, render

    if bool(results) == bool(pair):
        raise LoragError("lorag report: give RESULTS.json, or --compare A.json B.json (not both)")
    fmt = _format(out, fmt)
    if out:
        check_output(out)
    if pair:
        if save_runs:
            raise LoragError("--save-runs: with one RESULTS.json, not with --compare")
        a, b = (load_results(p) for p in pair)
        comp = compare(a, b, pair[0], pair[1])
        console.print(compare_table(comp))
        for note in comp.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
        if out:
            console.print(f"comparison written to {_write(Path(out), render(comp, fmt))}")
        return
    from lorag_harness.reports.files import write_report
    from lorag_harness.reports.terminal import print_report

    result = load_results(results)
    print_report(result, console)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    if result.partial:
        p = result.partial
        console.print(f"[bold red]PARTIAL RESULTS:[/] the run stopped at {p['grader']} · {p['task']} ({p['error']}); "
                      f"not measured: {', '.join(p['missing'])}", soft_wrap=True)
    if out:
        console.print(f"report written to {write_report(result, Path(out), fmt)}")
    if save_runs:
        from lorag_harness.retrieval.trec_runs import save_runs as write_runs

        written = write_runs(result, save_runs)
        console.print(f"runs written to {save_runs}: first-stage.trec, {', '.join(written['graders'].values())}, qrels.txt")
