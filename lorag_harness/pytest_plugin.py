"""pytest plugin: run graders on tasks inside a test suite and compare with stored baselines.

    @pytest.mark.lorag(grader="embedding", task="s1-relevance", n_eval=100)
    def test_s1_no_regression(lorag, lorag_baseline):
        lorag_baseline(lorag.result)

``pytest --lorag-update-baselines`` (re)writes the baselines. docs/pytest.md has the details.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from lorag_harness.data.builtin import PAIR_OPTIONS
from lorag_harness.errors import LoragError
from lorag_harness.api.task import TaskResult
from lorag_harness.api.types import Metric

DATASET_KEYS = PAIR_OPTIONS
MARKER_KEYS = ("grader", "task", "dataset")


def _context_keys() -> tuple[str, ...]:
    from lorag_harness.api.registry import GraderContext

    return tuple(f.name for f in dataclasses.fields(GraderContext) if f.name != "dataset")


CONTEXT_KEYS = _context_keys()


def pytest_addoption(parser):
    group = parser.getgroup("lorag", "lorag-harness regression checks")
    group.addoption("--lorag-update-baselines", action="store_true", help="rewrite lorag baselines instead of comparing")
    parser.addini("lorag_baselines", "folder of lorag baseline JSON files, relative to the rootdir", default="lorag_baselines")
    parser.addini("lorag_cache", "judgment cache file for lorag tests (default: in memory)", default=":memory:")


def pytest_configure(config):
    config.addinivalue_line("markers", "lorag(grader, task, dataset='reuters-r8', **options): the run behind `lorag.result`")


@contextmanager
def _as_test_failure():
    """A LoragError (bad option, unknown grader, bad data) fails the test with its one line, no traceback."""
    try:
        yield
    except LoragError as e:
        pytest.fail(f"lorag: {e}", pytrace=False)


def check_options(options: dict, pm=None) -> None:
    """LoragError unless ``options`` name a grader and a task, and every other key is a dataset,
    grader-context or task option (a typo such as ``n_evl`` would otherwise be ignored)."""
    from lorag_harness.api import registry

    missing = [k for k in ("grader", "task") if not options.get(k)]
    if missing:
        raise LoragError(f"@pytest.mark.lorag needs {' and '.join(f'{k}=…' for k in missing)}")
    entry, _ = registry.lookup(registry.tasks(pm), options["task"], "task")
    params = inspect.signature(entry.factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = set(MARKER_KEYS) | set(DATASET_KEYS) | set(CONTEXT_KEYS) | set(params)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise LoragError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for task "
                         f"{options['task']!r}; valid: {', '.join(sorted(valid))}")


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("lorag")
    if marker is None:
        return
    if marker.args:
        pytest.fail("lorag: @pytest.mark.lorag takes keywords only: grader=…, task=…", pytrace=False)
    from lorag_harness.plugins import pm

    with _as_test_failure():
        check_options(marker.kwargs, pm)


class Harness:
    """Plugins loaded; ``run`` grades a dataset with one grader on one task."""

    _datasets: dict = {}
    _graders: dict = {}

    def __init__(self, marker=None, cache_path: str = ":memory:"):
        from lorag_harness.plugins import pm

        self.pm, self.marker, self.cache_path = pm, marker, cache_path
        self._result = None

    def dataset(self, spec: str = "reuters-r8", **options):
        from lorag_harness.evaluation.runner import load_dataset

        key = (spec, tuple(sorted(options.items())))
        if key not in self._datasets:
            with _as_test_failure():
                self._datasets[key] = load_dataset(spec, options, self.pm)
        return self._datasets[key]

    def run(self, grader: str, task: str, dataset: str = "reuters-r8", **options) -> TaskResult:
        from lorag_harness.api import registry
        from lorag_harness.evaluation.cache import JudgmentCache
        from lorag_harness.evaluation.runner import build_grader, build_task, make_judge

        with _as_test_failure():
            check_options({"grader": grader, "task": task, "dataset": dataset, **options}, self.pm)
            ds = self.dataset(dataset, **{k: v for k, v in options.items() if k in DATASET_KEYS})
            context = registry.GraderContext(dataset=ds, **{k: v for k, v in options.items() if k in CONTEXT_KEYS})
            key = (grader, dataset, ds.fingerprint(), repr(sorted((k, options[k]) for k in CONTEXT_KEYS if k in options)))
            if key not in self._graders:
                self._graders[key] = build_grader(grader, context, self.pm)
            # as in `lorag bench`: a task gets the options its constructor takes (embedder, n_queries, …)
            task_options = {k: v for k, v in options.items() if k not in MARKER_KEYS}
            cache = JudgmentCache(self.cache_path)
            try:
                return build_task(task, {task: task_options}, self.pm).run(ds, make_judge(self._graders[key], cache, 32))
            finally:
                cache.close()

    @property
    def result(self) -> TaskResult:
        """The run described by the test's ``@pytest.mark.lorag(...)`` marker."""
        if self.marker is None:
            pytest.fail("lorag.result needs @pytest.mark.lorag(grader=..., task=...)", pytrace=False)
        if self._result is None:
            self._result = self.run(**self.marker.kwargs)
        return self._result


@pytest.fixture
def lorag(request):
    return Harness(request.node.get_closest_marker("lorag"), request.config.getini("lorag_cache"))


def baseline_filename(key: str) -> str:
    """A readable, filesystem-safe file name for a test's node id (or an explicit name):
    ``tests/test_a.py::test_x[p]`` -> ``tests__test_a.py__test_x[p].json``."""
    name = re.sub(r"[^\w.\-\[\]]+", "_", key.replace("::", "__").replace("/", "__"))
    if len(name) > 150:  # long parametrisations: keep a readable head and make it unique
        name = f"{name[:130]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return name + ".json"


def regressions(stored: dict[str, Metric], now: dict[str, Metric], tol: float | None) -> list[str]:
    """Readable lines, one per metric that fell beyond its tolerance (empty: no regression).

    Default tolerance: the stored 95% interval; with ``tol``: that much worse than the stored value.
    Metrics without a direction (counts, settings) are not compared."""
    lines = []
    for name, old in stored.items():
        new = now.get(name)
        if new is None or new.value is None or old.value is None:
            if old.value is not None:
                lines.append(f"{name}: stored {old.value:.4g}, now missing")
            continue
        better = new.better if new.better is not None else old.better
        if better is None:
            continue
        lower_better = better == "lower"
        if tol is not None:
            limit = old.value + tol if lower_better else old.value - tol
            rule = f"tol {tol:g}"
        else:
            bound = old.high if lower_better else old.low
            limit = old.value if bound is None else bound
            rule = "stored 95% interval" if bound is not None else "stored value"
        if (new.value > limit) if lower_better else (new.value < limit):
            interval = f" ({old.low:.3f}–{old.high:.3f})" if old.low is not None else ""
            lines.append(f"{name}: stored {old.value:.4g}{interval} → now {new.value:.4g}; allowed "
                         f"{'≤' if lower_better else '≥'} {limit:.4g} ({rule})")
    return lines


def _read_baseline(path: Path) -> dict[str, Metric]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: Metric.from_dict(v, k) for k, v in data["metrics"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        pytest.fail(f"lorag baseline {path} is not a baseline file ({type(e).__name__}: {e}): "
                    "run pytest --lorag-update-baselines", pytrace=False)


@pytest.fixture
def lorag_baseline(request):
    """``lorag_baseline(result, name=None, tol=None, metrics=None)``: compare with the stored baseline."""
    folder = Path(request.config.rootpath) / request.config.getini("lorag_baselines")
    update = request.config.getoption("--lorag-update-baselines")

    def check(result: TaskResult, name: str | None = None, tol: float | None = None, metrics=None):
        if isinstance(metrics, str):
            metrics = [metrics]
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
            pytest.fail(f"lorag_baseline: tol must be a number >= 0, not {tol!r}", pytrace=False)
        path = folder / baseline_filename(name or request.node.nodeid)
        if metrics is not None:
            unknown = [m for m in metrics if m not in result.metrics]
            if unknown:
                pytest.fail(f"lorag_baseline: metrics= names {', '.join(map(repr, unknown))}, not in the result "
                            f"(it has: {', '.join(result.metrics) or 'none'})", pytrace=False)
        current = {k: v for k, v in result.metrics.items() if metrics is None or k in metrics}
        if update:
            if not current:
                pytest.fail(f"lorag_baseline: the result has no metrics: {path} would check nothing", pytrace=False)
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"test": request.node.nodeid,
                                        "metrics": {k: v.to_dict() for k, v in current.items()}}, indent=2) + "\n")
            return
        if not path.is_file():
            legacy = folder / baseline_filename(request.node.name)
            hint = f" (baselines are now keyed by node id: move {legacy.name} there if it is this test's)" \
                if name is None and legacy.is_file() else ""
            pytest.fail(f"no lorag baseline at {path}: run pytest --lorag-update-baselines{hint}", pytrace=False)
        stored = _read_baseline(path)
        if metrics is not None:
            missing = [m for m in metrics if m not in stored]
            if missing:
                pytest.fail(f"lorag baseline {path} lacks {', '.join(map(repr, missing))}: "
                            "run pytest --lorag-update-baselines", pytrace=False)
            stored = {k: v for k, v in stored.items() if k in metrics}
        if not stored:
            pytest.fail(f"lorag baseline {path} holds no metrics, so it checks nothing: "
                        "run pytest --lorag-update-baselines", pytrace=False)
        problems = regressions(stored, current, tol)
        if problems:
            pytest.fail("lorag regression against " + str(path) + ":\n  " + "\n  ".join(problems), pytrace=False)

    return check
