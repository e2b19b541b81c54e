"""S1 relevance: binary decisions against the labels, with intervals and McNemar tests."""
from __future__ import annotations

import numpy as np

from lorag_harness.hookspecs import hookimpl
from lorag_harness.results import EvalPairsTask, TaskResult, pair_record, pairwise
from lorag_harness.stats import Metric, bootstrap, f1, mcnemar_exact, roc_auc, wilson


def relevance_metrics(labels, predicted, scores) -> dict[str, Metric]:
    """Accuracy, precision, recall (Wilson), F1 (bootstrap), ROC-AUC, parse failures.
    An unparsed decision (None) counts as "not relevant"."""
    y = np.asarray(labels, dtype=bool)
    failures = sum(p is None for p in predicted)
    yhat = np.asarray([bool(p) for p in predicted], dtype=bool)
    tp, fp, fn = int(np.sum(y & yhat)), int(np.sum(~y & yhat)), int(np.sum(y & ~yhat))
    metrics = {
        "accuracy": wilson(int(np.sum(y == yhat)), len(y)),
        "precision": wilson(tp, tp + fp),
        "recall": wilson(tp, tp + fn),
        "f1": bootstrap(f1, y, yhat),
        "roc_auc": Metric(None),
        "parse_failures": Metric(failures, n=len(y)),
    }
    if all(s is not None for s in scores) and len(set(y.tolist())) == 2:
        metrics["roc_auc"] = bootstrap(roc_auc, y, np.asarray(scores, float))
    return metrics


class S1Relevance(EvalPairsTask):
    """Relevance decisions on the eval pairs: accuracy, precision, recall, F1, ROC-AUC."""

    name = "s1-relevance"

    def __init__(self, limit: int | None = None):
        self.limit = limit

    def run(self, dataset, judge) -> TaskResult:
        pairs = self.pairs(dataset)
        judgments = judge(pairs)
        metrics = relevance_metrics([p.label for p in pairs], [j.relevant for j in judgments], [j.score for j in judgments])
        correct = [j.relevant is not None and j.relevant == p.label for p, j in zip(pairs, judgments)]
        return TaskResult(metrics, [pair_record(p, j) for p, j in zip(pairs, judgments)], {"correct": correct})

    def compare(self, results):
        return pairwise(results, "correct", mcnemar_exact)


@hookimpl
def register_tasks(register):
    register("s1-relevance", S1Relevance)
