"""pytest plugin: run graders on tasks inside a test suite and compare with stored baselines.

    @pytest.mark.lorag(grader="embedding", task="s1-relevance", n_eval=100)
    def test_s1_no_regression(lorag, lorag_baseline):
        lorag_baseline(lorag.result)

``pytest --lorag-update-baselines`` (re)writes the baselines.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .data.builtin import PAIR_OPTIONS
from .report import LOWER_IS_BETTER
from .results import TaskResult
from .stats import Metric

DATASET_KEYS = PAIR_OPTIONS
CONTEXT_KEYS = ("base_model", "embedder", "batch_size", "max_doc_tokens", "quant")


def pytest_addoption(parser):
    group = parser.getgroup("lorag", "lorag-harness regression checks")
    group.addoption("--lorag-update-baselines", action="store_true", help="rewrite lorag baselines instead of comparing")
    parser.addini("lorag_baselines", "folder of lorag baseline JSON files, relative to the rootdir", default="lorag_baselines")
    parser.addini("lorag_cache", "judgment cache file for lorag tests (default: in memory)", default=":memory:")


def pytest_configure(config):
    config.addinivalue_line("markers", "lorag(grader, task, dataset='reuters-r8', **options): the run behind `lorag.result`")


class Harness:
    """Plugins loaded; ``run`` grades a dataset with one grader on one task."""

    _datasets: dict = {}
    _graders: dict = {}

    def __init__(self, marker=None, cache_path: str = ":memory:"):
        from .plugins import pm

        self.pm, self.marker, self.cache_path = pm, marker, cache_path
        self._result = None

    def dataset(self, spec: str = "reuters-r8", **options):
        from .runner import load_dataset

        key = (spec, tuple(sorted(options.items())))
        if key not in self._datasets:
            self._datasets[key] = load_dataset(spec, options, self.pm)
        return self._datasets[key]

    def run(self, grader: str, task: str, dataset: str = "reuters-r8", **options) -> TaskResult:
        from . import registry
        from .cache import JudgmentCache
        from .runner import build_grader, build_task, make_judge

        ds = self.dataset(dataset, **{k: v for k, v in options.items() if k in DATASET_KEYS})
        context = registry.GraderContext(dataset=ds, **{k: v for k, v in options.items() if k in CONTEXT_KEYS})
        key = (grader, dataset, ds.fingerprint(), tuple(sorted((k, options[k]) for k in CONTEXT_KEYS if k in options)))
        if key not in self._graders:
            self._graders[key] = build_grader(grader, context, self.pm)
        task_options = {k: v for k, v in options.items() if k not in DATASET_KEYS + CONTEXT_KEYS}
        cache = JudgmentCache(self.cache_path)
        try:
            return build_task(task, {task: task_options}, self.pm).run(ds, make_judge(self._graders[key], cache, 32))
        finally:
            cache.close()

    @property
    def result(self) -> TaskResult:
        """The run described by the test's ``@pytest.mark.lorag(...)`` marker."""
        if self.marker is None:
            raise pytest.UsageError("lorag.result needs @pytest.mark.lorag(grader=..., task=...)")
        if self._result is None:
            self._result = self.run(**self.marker.kwargs)
        return self._result


@pytest.fixture
def lorag(request):
    return Harness(request.node.get_closest_marker("lorag"), request.config.getini("lorag_cache"))


def regressions(stored: dict[str, Metric], now: dict[str, Metric], tol: float | None) -> list[str]:
    """Readable lines, one per metric that fell beyond its tolerance (empty: no regression).

    Default tolerance: the stored 95% interval; with ``tol``: that much below the stored value."""
    lines = []
    for name, old in stored.items():
        new = now.get(name)
        if new is None or new.value is None or old.value is None:
            if old.value is not None:
                lines.append(f"{name}: stored {old.value:.4g}, now missing")
            continue
        lower_better = name in LOWER_IS_BETTER
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


@pytest.fixture
def lorag_baseline(request):
    """``lorag_baseline(result, name=None, tol=None, metrics=None)``: compare with the stored baseline."""
    folder = Path(request.config.rootpath) / request.config.getini("lorag_baselines")
    update = request.config.getoption("--lorag-update-baselines")

    def check(result: TaskResult, name: str | None = None, tol: float | None = None, metrics=None):
        path = folder / (re.sub(r"[^\w.-]+", "_", name or request.node.name) + ".json")
        current = {k: v for k, v in result.metrics.items() if metrics is None or k in metrics}
        if update:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"metrics": {k: v.to_dict() for k, v in current.items()}}, indent=2) + "\n")
            return
        if not path.is_file():
            pytest.fail(f"no lorag baseline at {path}: run pytest --lorag-update-baselines", pytrace=False)
        stored = {k: Metric.from_dict(v) for k, v in json.loads(path.read_text())["metrics"].items()
                  if metrics is None or k in metrics}
        problems = regressions(stored, current, tol)
        if problems:
            pytest.fail("lorag regression against " + str(path) + ":\n  " + "\n  ".join(problems), pytrace=False)

    return check
