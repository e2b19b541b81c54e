"""What a task returns for one grader, and how tasks compare graders."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from lorag_harness.api.types import Dataset, Judgment, Pair
from lorag_harness.api.types import Metric

Judge = Callable[..., list[Judgment]]  # judge(pairs, reasons=False) -> judgments


@dataclass
class TaskResult:
    metrics: dict[str, Metric]
    records: list[dict] = field(default_factory=list)  # one per example
    paired: dict[str, list] = field(default_factory=dict)  # per-unit values for paired tests

    def to_dict(self) -> dict:
        return {"metrics": {k: m.to_dict() for k, m in self.metrics.items()}, "records": self.records,
                "paired": self.paired}

    @classmethod
    def from_dict(cls, d: dict) -> "TaskResult":
        return cls({k: Metric.from_dict(v, k) for k, v in d["metrics"].items()}, d.get("records", []), d.get("paired", {}))


class Task(Protocol):
    name: str

    def run(self, dataset: Dataset, judge: Judge) -> TaskResult: ...

    def compare(self, results: dict[str, TaskResult]) -> list[dict]: ...

    def size(self, dataset: Dataset) -> int:
        """How many judgments ``run`` will ask for (for progress bars)."""


class EvalPairsTask:
    """Base of tasks that grade the dataset's eval pairs, the first ``limit`` of them."""

    limit: int | None = None

    def pairs(self, dataset: Dataset) -> list[Pair]:
        return dataset.eval_pairs[: self.limit] if self.limit else dataset.eval_pairs

    def size(self, dataset: Dataset) -> int:
        return len(self.pairs(dataset))


def pair_record(pair: Pair, j: Judgment) -> dict:
    return {"pair_id": pair.pair_id, "query": pair.query, "document": pair.document[:200], "label": pair.label, "relevant": j.relevant,
            "score": j.score, "parse_ok": j.parse_ok, "reason": j.reason, "raw_text": j.raw_text}


def pairwise(results: dict[str, TaskResult], key: str, test: Callable) -> list[dict]:
    """Run ``test(a_values, b_values)`` on every pair of graders over ``paired[key]``."""
    names = sorted(results)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            va, vb = results[a].paired.get(key), results[b].paired.get(key)
            if va is not None and vb is not None and len(va) == len(vb):
                out.append({"a": a, "b": b, "on": key, **test(va, vb)})
    return out
