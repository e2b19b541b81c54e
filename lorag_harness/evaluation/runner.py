"""Run graders × tasks on a dataset, reusing cached judgments."""
from __future__ import annotations

import gc
import inspect
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from lorag_harness.api import registry
from lorag_harness.api.grader import grade_checked
from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.errors import GraderError, LoragError
from lorag_harness.api.types import Dataset, Judgment, Pair
from lorag_harness.api.task import TaskResult


@dataclass
class BenchConfig(registry.GraderSettings):
    graders: list[str]
    tasks: list[str]
    dataset: str = "reuters-r8"
    dataset_options: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)  # task name -> kwargs; "*" for all tasks
    cache_path: str | None = None  # None: default file; ":memory:" disables reuse
    chunk_size: int = 32  # judgments stored per transaction
    skip_unfit_tasks: bool = False  # True: skip (with a notice) tasks the dataset cannot feed; False: refuse


@dataclass
class BenchResult:
    dataset: str
    dataset_fingerprint: str
    graders: list[str]
    tasks: list[str]
    results: dict[str, dict[str, TaskResult]]  # task -> grader -> result
    comparisons: dict[str, list[dict]]
    timings: dict[str, dict[str, float]]  # grader -> task -> seconds
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was skipped or not measured, and why
    # set when a failure stopped the run: {"error", "grader", "task", "missing": ["grader · task", ...]}
    partial: dict | None = None
    # results that must not pass silently (a grader ranking worse than random): shown first in reports,
    # `lorag bench` exits 3 on them unless --allow-worse-than-random
    alerts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {
            "dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint,
            "graders": self.graders, "tasks": self.tasks,
            "results": {t: {g: r.to_dict() for g, r in rs.items()} for t, rs in self.results.items()},
            "comparisons": self.comparisons, "timings": self.timings, "config": self.config,
        }
        if self.notes:
            d["notes"] = self.notes
        if self.partial:
            d["partial"] = self.partial
        if self.alerts:
            d["alerts"] = self.alerts
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BenchResult":
        results = {t: {g: TaskResult.from_dict(r) for g, r in rs.items()} for t, rs in d["results"].items()}
        return cls(d["dataset"], d["dataset_fingerprint"], d["graders"], d["tasks"], results,
                   d.get("comparisons", {}), d.get("timings", {}), d.get("config", {}), d.get("notes", []),
                   d.get("partial"), d.get("alerts", []))


class IncompleteRun(Exception):
    """A failure stopped the run: ``result`` holds what finished (``result.partial`` says what did
    not), ``cause`` is the failure (an exception, or a KeyboardInterrupt)."""

    def __init__(self, result: BenchResult, cause: BaseException):
        super().__init__(f"run stopped: {type(cause).__name__}: {cause}")
        self.result, self.cause = result, cause


class PluginFailure(RuntimeError):
    """A plug-in's own code raised (a bug in the plug-in: exit 1); the message names the grader spec."""


def grader_fingerprint(grader) -> str:
    """The grader's own fingerprint, or its class and name for plug-ins that define none."""
    if hasattr(grader, "fingerprint"):
        try:
            return grader.fingerprint()
        except LoragError:
            raise
        except Exception as e:  # noqa: BLE001 - a plug-in bug, named
            raise PluginFailure(f"grader {getattr(grader, 'name', None) or type(grader).__name__}: fingerprint() "
                                f"raised {type(e).__name__}: {e}") from e
    return f"{type(grader).__module__}.{type(grader).__qualname__}:{grader.name}"


class NoUsableJudgment(LoragError):
    """A grader answered nothing usable (every judgment undecided): nothing can be measured."""


def make_judge(grader, cache: JudgmentCache, chunk_size: int, advance=None):
    """``judge(pairs, reasons=False)``: cached judgments first, the rest in stored chunks.

    ``judge.tally`` counts the judgments given (``given``), the undecided ones (``undecided``), the
    ones the grader held back from the cache as failures (``failed``: requests that failed) and the
    first of those. When a grader has given nothing but undecided judgments (a judge that answers
    nothing: unreachable, every request an error), the judge raises :class:`NoUsableJudgment`."""
    fp = grader_fingerprint(grader)
    tally = {"given": 0, "undecided": 0, "failed": 0, "first": None}
    keep = getattr(grader, "cacheable", None) or (lambda j: True)

    def count(made: list[Judgment]) -> None:
        for j in made:
            tally["given"] += 1
            if j.relevant is not None:
                continue
            tally["undecided"] += 1
            failed = not keep(j)
            tally["failed"] += failed
            if tally["first"] is None or (failed and tally["failed"] == 1):  # the first failed request first
                text = (j.raw_text or "").strip()
                tally["first"] = text.splitlines()[0][:200] if text else "no text"
        if made and tally["undecided"] == tally["given"] and tally["given"] >= min(16, len(made)):
            raise NoUsableJudgment(f"grader {grader.name}: no usable judgment in {tally['given']} pairs, every one "
                                   f"undecided ({tally['first']})")

    def judge(pairs: list[Pair], reasons: bool = False) -> list[Judgment]:
        keys = [p.content_hash() for p in pairs]
        found = cache.get_many(fp, list(dict.fromkeys(keys)), reasons)
        todo = list({k: p for k, p in zip(keys, pairs) if k not in found}.items())
        order = getattr(grader, "grading_order", None)  # optional sort key: e.g. chunks of similar lengths pad less
        if callable(order):
            todo.sort(key=lambda item: order(item[1]))
        size = max(chunk_size, getattr(grader, "grading_chunk", 0) or 0)  # a grader may batch more pairs per call
        if advance:
            advance(len(pairs) - sum(1 for k in keys if k not in found))
        for i in range(0, len(todo), size):
            chunk = todo[i : i + size]
            made = grade_checked(grader, [p for _, p in chunk], reasons=reasons, advance=advance)
            # a grader may hold back transient failures (a request that failed) so a rerun retries them
            cache.put_many(fp, [(k, j) for (k, _), j in zip(chunk, made) if keep(j)], reasons)
            found.update((k, j) for (k, _), j in zip(chunk, made))
            count(made)
        return [found[k] for k in keys]

    judge.tally = tally
    return judge


def failure_note(spec: str, task: str, tally: dict) -> str | None:
    """The report note for a run where some of a grader's requests failed (None: none failed)."""
    if not tally["failed"]:
        return None
    return (f"{spec} · {task}: {tally['failed']} of {tally['given']} requests failed and count as undecided "
            f"(first: {tally['first']}); a rerun retries them")


def load_dataset(spec: str, options: dict | None = None, pm=None) -> Dataset:
    from lorag_harness.data.validation import check_dataset

    entry, arg = registry.lookup(registry.datasets(pm), spec, "dataset")
    return check_dataset(entry.factory(arg, dict(options or {})))  # the same checks for every plugin's dataset


def build_task(name: str, options: dict, pm=None):
    entry, _ = registry.lookup(registry.tasks(pm), name, "task")
    merged = {**options.get("*", {}), **options.get(name, {})}
    params = inspect.signature(entry.factory).parameters
    accepted = {k: v for k, v in merged.items() if k in params and v is not None}
    return entry.factory(**accepted)


def build_grader(spec: str, context: registry.GraderContext, pm=None):
    entry, arg = registry.lookup(registry.graders(pm), spec, "grader")
    try:
        grader = entry.factory(arg, context)
    except LoragError:
        raise
    except Exception as e:  # noqa: BLE001 - a plug-in bug, named
        raise PluginFailure(f"grader {spec}: its factory raised {type(e).__name__}: {e}") from e
    if grader is None or not callable(getattr(grader, "grade", None)):
        raise GraderError(f"grader {spec}: its factory returned {type(grader).__name__}, not a grader "
                          "(an object with grade(pairs, *, reasons, advance))")
    if not getattr(grader, "name", None):
        grader.name = spec
    return grader


def check_tasks(tasks: list, dataset: Dataset, skip_unfit: bool) -> tuple[list, list[str]]:
    """Each task's ``check(dataset)`` (optional): it raises LoragError when the dataset cannot feed the
    task and may return notes on what it will not measure. Unfit tasks are refused (naming those that
    fit), or skipped with a notice when ``skip_unfit``."""
    fit, notes, unfit = [], [], []
    for task in tasks:
        check = getattr(task, "check", None)
        try:
            found = check(dataset) if callable(check) else None
        except LoragError as e:
            unfit.append((task, str(e)))
            continue
        fit.append(task)
        notes += [f"{task.name}: {n}" for n in ([found] if isinstance(found, str) else found or ())]
    if unfit and (not skip_unfit or not fit):
        names = ", ".join(t.name for t in fit)
        hint = f"; tasks that fit it: -t {','.join(t.name for t in fit)}" if names else ""
        raise LoragError("; ".join(msg for _, msg in unfit) + hint)
    for task, msg in unfit:
        notes.append(f"{task.name}: skipped: {msg.removeprefix(f'task {task.name}: ')}")
    return fit, notes


def check_names(config: BenchConfig, pm=None) -> None:
    """Unknown or repeated grader and task names, before anything is loaded."""
    graders, tasks = registry.graders(pm), registry.tasks(pm)
    for spec in config.graders:
        registry.lookup(graders, spec, "grader")
    for name in config.tasks:
        registry.lookup(tasks, name, "task")
    for kind, names in (("--graders", config.graders), ("--tasks", config.tasks)):
        if len(set(names)) != len(names):
            raise LoragError(f"{kind} names one twice: {','.join(names)}")


def build_graders(config: BenchConfig, context: registry.GraderContext, pm=None) -> dict:
    """Every grader, before any grading: a bad option or adapter fails here. A factory's cheap
    ``check(arg, context)`` (paths, configs), if it has one, runs for every grader before any is built
    (building one may be slow: the embedding grader calibrates)."""
    entries = registry.graders(pm)
    for spec in config.graders:
        entry, arg = registry.lookup(entries, spec, "grader")
        check = getattr(entry.factory, "check", None)
        if callable(check):
            check(arg, context)
    return {spec: build_grader(spec, context, pm) for spec in config.graders}


def run_bench(config: BenchConfig, pm=None, console: Console | None = None, dataset: Dataset | None = None) -> BenchResult:
    """Check everything (cache, dataset, tasks, graders), then grade. A failure while grading raises
    :class:`IncompleteRun` carrying the results that finished."""
    console = console or Console(stderr=True)
    check_names(config, pm)
    cache = JudgmentCache(config.cache_path)  # a damaged or read-only cache stops here, before any work
    try:
        dataset = dataset or load_dataset(config.dataset, config.dataset_options, pm)
        tasks = [build_task(t, config.task_options, pm) for t in config.tasks]
        tasks, task_notes = check_tasks(tasks, dataset, config.skip_unfit_tasks)
        notes = [*(getattr(dataset, "notes", None) or []), *task_notes]
        if config.embedder:
            from lorag_harness.evaluation.preflight import check_embedder

            check_embedder(config.embedder)
        context = config.grader_context(dataset)
        for note in notes:  # before the graders are built: a grader refusing the data follows its note
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        graders = build_graders(config, context, pm)
        grader_notes = [f"{spec}: {n}" for spec, g in graders.items() for n in getattr(g, "notes", None) or ()]
        for note in grader_notes:
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        notes += grader_notes
        return _grade_all(config, graders, tasks, dataset, cache, console, notes)
    finally:
        cache.close()


def _grade_all(config, graders: dict, tasks: list, dataset: Dataset, cache, console, notes) -> BenchResult:
    results: dict[str, dict[str, TaskResult]] = {t.name: {} for t in tasks}
    timings: dict[str, dict[str, float]] = {}
    alerts: list[str] = []
    failure = where = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    from lorag_harness.progress import progress as heartbeat_progress

    with heartbeat_progress(*columns, console=console, transient=False) as progress:
        for spec in list(graders):
            grader = graders.pop(spec)  # dropped after its tasks: one model in memory at a time
            timings[spec] = {}
            for task in tasks:
                bar = progress.add_task(f"{spec} · {task.name}", total=task.size(dataset), unit="pairs")
                judge = make_judge(grader, cache, config.chunk_size, lambda n, b=bar: progress.advance(b, n))
                start = time.perf_counter()
                try:
                    results[task.name][spec] = task.run(dataset, judge)
                except (Exception, KeyboardInterrupt) as e:  # keep what finished
                    failure, where = e, (spec, task.name)
                    break
                if note := failure_note(spec, task.name, judge.tally):
                    notes.append(note)
                    console.print("[yellow]note:[/] " + escape(note), soft_wrap=True, emoji=False)
                timings[spec][task.name] = round(time.perf_counter() - start, 3)
                progress.update(bar, completed=progress.tasks[bar].total)
                check = getattr(task, "alerts", None)  # optional: results that must not pass silently
                for alert in (check(spec, results[task.name][spec]) if callable(check) else ()):
                    progress.console.print(Text(alert, style="bold red"), soft_wrap=True)
                    alerts.append(alert)
            del grader
            if graders:  # free this model before the next grader runs (a full collection is slow)
                gc.collect()
            if failure is not None:
                break
    comparisons = {t.name: t.compare(results[t.name]) for t in tasks}
    cfg = {k: v for k, v in config.__dict__.items()}
    from lorag_harness.backends.lm import device_type
    from lorag_harness.backends.precision import grading_precision, machine

    device = device_type(config.quant)
    cfg["machine"] = machine(grading_precision(config.quant, config.precision, device),
                             decode=grading_precision(config.quant, config.precision, device, work="decode"))
    result = BenchResult(dataset.name, dataset.fingerprint(), list(config.graders), [t.name for t in tasks],
                         results, comparisons, timings, cfg, notes, alerts=alerts)
    if failure is None:
        return result
    result.partial = partial_record(failure, *where, [f"{g} · {t.name}" for g in config.graders for t in tasks
                                                      if g not in results[t.name]])
    raise IncompleteRun(result, failure) from failure


def partial_record(failure: BaseException, grader: str | None, task: str | None, missing: list[str]) -> dict:
    """What ``BenchResult.partial`` says of a run a failure stopped: the error, where, what is missing."""
    return {"error": f"{type(failure).__name__}: {failure}".strip(), "grader": grader, "task": task, "missing": missing}
