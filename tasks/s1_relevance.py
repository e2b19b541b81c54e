"""S1 relevance: binary decisions against the labels, with intervals and McNemar tests."""
from __future__ import annotations

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.errors import LoragError
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
        "parse_failures": Metric(failures, n=len(y), better="lower"),
    }
    if all(s is not None for s in scores) and len(set(y.tolist())) == 2:
        metrics["roc_auc"] = bootstrap(roc_auc, y, np.asarray(scores, float))
    return metrics


class S1Relevance(EvalPairsTask):
    """Relevance decisions on the eval pairs: accuracy, precision, recall, F1, ROC-AUC."""

    name = "s1-relevance"

    def __init__(self, limit: int | None = None):
        self.limit = limit

    def check(self, dataset) -> None:
        if not self.pairs(dataset):
            raise LoragError(f"task s1-relevance: dataset {dataset.name!r} has no evaluation pairs")

    def check(self, dataset) -> None:
        if not self.pairs(dataset):
            raise LoragError(f"task s1-relevance: dataset {dataset.name!r} has no evaluation pairs")

    def run(self, dataset, judge) -> TaskResult:
        pairs = self.pairs(dataset)
        judgments = judge(pairs)
        metrics = relevance_metrics([p.label for p in pairs], [j.relevant for j in judgments], [j.score for j in judgments])
        correct = [j.relevant is not None and j.relevant == p.label for p, j in zip(pairs, judgments)]
        return TaskResult(metrics, [pair_record(p, j) for p, j in zip(pairs, judgments)], {"correct": correct})

    def compare(self, results):
        return pairwise(results, "correct", mcnemar_exact)

    @classmethod
    def charts(cls, results):
        """Confusion matrices and a reliability diagram (HTML report)."""
        from sklearn.metrics import confusion_matrix

        from lorag_harness import plots

        y = {g: [bool(x["label"]) for x in r.records] for g, r in results.items()}
        cms = {g: confusion_matrix(y[g], [bool(x["relevant"]) for x in r.records], labels=[False, True])
               for g, r in results.items()}
        curves = {g: (y[g], [x["score"] for x in r.records]) for g, r in results.items()}
        return [("Confusion matrices", plots.confusion_matrices(cms)), ("Reliability", plots.reliability(curves))]

    @classmethod
    def tables(cls, results, limit: int = 30):
        """The pairs on which graders disagree (first ``limit``)."""
        graders = list(results)
        if len(graders) < 2:
            return []
        recs = {g: results[g].records for g in graders}
        found = []
        for i, rec in enumerate(recs[graders[0]]):
            decisions = [recs[g][i]["relevant"] for g in graders]
            if len(set(decisions)) > 1:
                cells = [f"{'✔' if recs[g][i]['relevant'] == rec['label'] else '✘'} "
                         f"{'' if recs[g][i]['score'] is None else round(recs[g][i]['score'], 2)}" for g in graders]
                found.append([rec["pair_id"], rec["query"], rec.get("document", ""), rec["label"], *cells])
        return [(f"Disagreements (s1-relevance): {len(found)} pairs", ["pair", "query", "document", "label", *graders],
                 found[:limit])]


@hookimpl
def register_tasks(register):
    register("s1-relevance", S1Relevance)
