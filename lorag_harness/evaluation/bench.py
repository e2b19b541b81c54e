"""Run a bench and report it: the terminal tables, then the report file (used by ``lorag bench`` and
``lorag demo``). Finished results are printed and written even when a failure stops the run."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from lorag_harness.errors import LoragError
from lorag_harness.evaluation.runner import BenchConfig, BenchResult, IncompleteRun, run_bench

DEFAULT_TASKS = ("s1-relevance", "s2-reasoning", "rag-p5")


def stdout_console() -> Console:
    # piped output gets a wide table instead of Rich's 80-column default
    return Console(width=None if sys.stdout.isatty() else 170)


def check_format(out: str, fmt: str | None) -> None:
    """Without --format the report's format comes from the --out suffix: an unknown one is refused."""
    from lorag_harness.reports.files import SUFFIXES

    if fmt is None and Path(out).suffix.lower() not in SUFFIXES:
        raise LoragError(f"--out {out}: cannot tell the report format from the suffix "
                         f"{Path(out).suffix or '(none)'}: name it .json, .md or .html, or pass --format")


def run_and_report(config: BenchConfig, out: str | None, fmt: str | None, dataset=None, pm=None,
                   console: Console | None = None, err: Console | None = None, force: bool = False,
                   save_runs: str | None = None) -> BenchResult:
    """Check ``out`` can be written, run, print the tables, write the report. If the run stopped on
    a failure, what finished is printed and written (marked partial) and the failure is raised again."""
    from rich.markup import escape

    from lorag_harness.evaluation.preflight import check_output, check_replaceable
    from lorag_harness.reports.terminal import print_report

    if pm is None:
        from lorag_harness.plugins import pm
    console = console or stdout_console()
    err = err or Console(stderr=True)
    if out:
        check_output(out)  # before any work: a report that cannot be written is found now
        check_format(out, fmt)
        if not force:
            check_replaceable(out)  # a file lorag did not write is not overwritten
    if save_runs:
        from lorag_harness.retrieval.trec_runs import check_folder

        check_folder(save_runs)
    start = time.perf_counter()
    failure = None
    try:
        result = run_bench(config, pm, err, dataset=dataset)
    except IncompleteRun as stopped:
        result, failure = stopped.result, stopped.cause
    finished = any(result.results.values())
    if finished:
        print_report(result, console)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, emoji=False)
    for alert in result.alerts:
        from rich.text import Text

        console.print(Text(alert, style="bold red"), soft_wrap=True)
    if result.partial:
        p = result.partial
        console.print("[bold red]PARTIAL RESULTS:[/] " + escape(f"the run stopped at {p['grader']} · {p['task']} "
                      f"({p['error']}); not measured: {', '.join(p['missing'])}"), soft_wrap=True, emoji=False)
    from lorag_harness.backends.precision import describe

    where = f" on {describe(result.config['machine'])}" if result.config.get("machine") else ""
    console.print(f"{time.perf_counter() - start:.0f} s in all{where}", style="dim", markup=False, soft_wrap=True)
    if out and not finished:
        console.print(f"nothing finished: {out} not written")
    elif out:
        from lorag_harness.reports.files import write_report

        path = write_report(result, Path(out), fmt)
        console.print(f"{'partial ' if result.partial else ''}report written to {path}")
    if save_runs and result.results.get("rerank"):
        from lorag_harness.retrieval.trec_runs import save_runs as write_runs

        written = write_runs(result, save_runs)
        console.print(f"runs written to {save_runs}: first-stage.trec, {', '.join(written['graders'].values())}, qrels.txt")
    if failure is not None:
        raise failure
    return result
