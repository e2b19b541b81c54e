"""Run a bench and report it: the terminal tables, then the report file (used by ``lorag bench`` and
``lorag demo``). Finished results are printed and written even when a failure stops the run."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from .errors import LoragError
from .runner import BenchConfig, BenchResult, IncompleteRun, run_bench

DEFAULT_TASKS = ("s1-relevance", "s2-reasoning", "rag-p5")


def stdout_console() -> Console:
    # piped output gets a wide table instead of Rich's 80-column default
    return Console(width=None if sys.stdout.isatty() else 170)


def check_format(out: str, fmt: str | None) -> None:
    """Without --format the report's format comes from the --out suffix: an unknown one is refused."""
    from .export import SUFFIXES

    if fmt is None and Path(out).suffix.lower() not in SUFFIXES:
        raise LoragError(f"--out {out}: cannot tell the report format from the suffix "
                         f"{Path(out).suffix or '(none)'}: name it .json, .md or .html, or pass --format")


def run_and_report(config: BenchConfig, out: str | None, fmt: str | None, dataset=None, pm=None,
                   console: Console | None = None, err: Console | None = None) -> BenchResult:
    """Check ``out`` can be written, run, print the tables, write the report. If the run stopped on
    a failure, what finished is printed and written (marked partial) and the failure is raised again."""
    from .checks import check_output
    from .report import print_report

    if pm is None:
        from .plugins import pm
    console = console or stdout_console()
    err = err or Console(stderr=True)
    if out:
        check_output(out)  # before any work: a report that cannot be written is found now
        check_format(out, fmt)
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
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    if result.partial:
        p = result.partial
        console.print(f"[bold red]PARTIAL RESULTS:[/] the run stopped at {p['grader']} · {p['task']} "
                      f"({p['error']}); not measured: {', '.join(p['missing'])}", soft_wrap=True)
    from .precision import describe

    where = f" on {describe(result.config['machine'])}" if result.config.get("machine") else ""
    console.print(f"{time.perf_counter() - start:.0f} s in all{where}", style="dim", markup=False, soft_wrap=True)
    if out and not finished:
        console.print(f"nothing finished: {out} not written")
    elif out:
        from .export import write_report

        path = write_report(result, Path(out), fmt)
        console.print(f"{'partial ' if result.partial else ''}report written to {path}")
    if failure is not None:
        raise failure
    return result
