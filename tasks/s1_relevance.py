"""S1 relevance: binary decisions against the labels, with intervals; McNemar on the decisions
and DeLong on the ROC-AUCs for every pair of graders.

Every decision is the grader's own (its threshold is fixed before the evaluation pairs are seen:
calibrated on training pairs or read from the model's manifest); nothing here is tuned on them."""
from __future__ import annotations

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.api.task import EvalPairsTask, TaskResult, pair_record, pairwise
from lorag_harness.evaluation.stats import Metric, bootstrap, calibration_metrics, delong, f1, mcnemar_exact, roc_auc, wilson  # noqa: F401 - delong re-exported


def average_precision(y, scores, axis=-1):
    """Average precision (area under the precision-recall curve, scikit-learn's step-wise
    definition) along the last axis; NaN without positives. One pair of arrays goes to
    scikit-learn; stacked rows (bootstrap resamples) are computed at once in numpy, equal to it
    on every row (a test)."""
    from sklearn.metrics import average_precision_score

    y, scores = np.asarray(y, bool), np.asarray(scores, float)
    if y.ndim == 1:
        return float(average_precision_score(y, scores)) if y.any() else float("nan")
    order = np.argsort(-scores, axis=-1, kind="stable")
    s, hit = np.take_along_axis(scores, order, -1), np.take_along_axis(y, order, -1)
    precision = np.cumsum(hit, -1) / np.arange(1, s.shape[-1] + 1)
    # a run of tied scores is one threshold: each of its positives gets the precision at its end
    index = np.broadcast_to(np.arange(s.shape[-1]), s.shape)
    ends = np.where(np.concatenate([s[..., 1:] != s[..., :-1], np.ones_like(s[..., :1], bool)], -1), index, s.shape[-1])
    ends = np.flip(np.minimum.accumulate(np.flip(ends, -1), -1), -1)
    positives = hit.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, np.sum(hit * np.take_along_axis(precision, ends, -1), -1) / positives, np.nan)


def relevance_metrics(labels, predicted, scores) -> dict[str, Metric]:
    """Accuracy, precision, recall (Wilson), F1 (bootstrap), ROC-AUC and average precision
    (bootstrap), the prevalence and parse failures. An unparsed decision (None) counts as "not relevant"."""
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
        "average_precision": Metric(None),
        "positive_rate": Metric(float(y.mean()) if len(y) else None, n=len(y), better=None),
        "parse_failures": Metric(failures, n=len(y), better="lower"),
    }
    if all(s is not None for s in scores) and len(set(y.tolist())) == 2:
        s = np.asarray(scores, float)
        metrics["roc_auc"] = bootstrap(roc_auc, y, s)
        metrics["average_precision"] = bootstrap(average_precision, y, s, n_resamples=500)
    return metrics


class S1Relevance(EvalPairsTask):
    """Relevance decisions on the eval pairs: accuracy, precision, recall, F1, ROC-AUC, average precision."""

    name = "s1-relevance"

    def __init__(self, limit: int | None = None, calibrate: str | None = None):
        from lorag_harness.evaluation.calibration import METHODS

        if calibrate is not None and calibrate not in METHODS:
            raise LoragError(f"task s1-relevance: calibrate must be isotonic or platt, not {calibrate!r}")
        self.limit, self.calibrate = limit, calibrate

    def size(self, dataset) -> int:
        return len(self.pairs(dataset)) + (len(dataset.train_pairs) if self.calibrate else 0)

    def check(self, dataset) -> list[str]:
        labels = {p.label for p in self.pairs(dataset)}
        if not labels:
            raise LoragError(f"task s1-relevance: dataset {dataset.name!r} has no evaluation pairs")
        if len(labels) < 2:
            return [f"every evaluation pair is labelled {labels.pop()}: ROC-AUC and average precision are undefined"]
        if self.calibrate and len({p.label for p in dataset.train_pairs}) < 2:
            raise LoragError(f"task s1-relevance: --calibrate {self.calibrate} is fitted on training pairs of both labels; "
                             f"dataset {dataset.name!r} has {len(dataset.train_pairs)} training pairs")
        return []

    def run(self, dataset, judge) -> TaskResult:
        pairs = self.pairs(dataset)
        judgments = judge(pairs)
        metrics = relevance_metrics([p.label for p in pairs], [j.relevant for j in judgments], [j.score for j in judgments])
        correct = [j.relevant is not None and j.relevant == p.label for p, j in zip(pairs, judgments)]
        paired = {"correct": correct}
        records = [pair_record(p, j) for p, j in zip(pairs, judgments)]
        labels = [p.label for p in pairs]
        if all(j.score is not None for j in judgments):
            scores = [j.score for j in judgments]
            paired.update(label=labels, score=scores)
            metrics |= calibration_metrics(labels, scores)  # None unless the scores are probabilities
            if self.calibrate:  # fitted on the training pairs only, applied to the evaluation scores
                from lorag_harness.evaluation.calibration import fit

                train = dataset.train_pairs
                fitted = [j.score for j in judge(train)]
                if any(s is None for s in fitted):
                    raise LoragError(f"--calibrate {self.calibrate}: the grader gave no score for some training pairs")
                cal = fit(self.calibrate, [p.label for p in train], fitted)
                probs = cal(scores)
                metrics |= calibration_metrics(labels, probs, suffix="_cal")
                for rec, value in zip(records, probs):
                    rec["calibrated"] = float(value)
                records[0]["calibration"] = cal.info()
        else:
            metrics |= calibration_metrics([], [])
        return TaskResult(metrics, records, paired)

    def compare(self, results):
        out = pairwise(results, "correct", mcnemar_exact)
        names = sorted(results)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pa, pb = results[a].paired, results[b].paired
                if "score" in pa and "score" in pb and pa.get("label") == pb.get("label"):
                    out.append({"a": a, "b": b, **delong(pa["label"], pa["score"], pb["score"])})
        return out

    @classmethod
    def charts(cls, results):
        """Confusion matrices and a reliability diagram (HTML report)."""
        from sklearn.metrics import confusion_matrix

        from lorag_harness.reports import plots

        y = {g: [bool(x["label"]) for x in r.records] for g, r in results.items()}
        cms = {g: confusion_matrix(y[g], [bool(x["relevant"]) for x in r.records], labels=[False, True])
               for g, r in results.items()}
        curves = {g: (y[g], [x["score"] for x in r.records]) for g, r in results.items()}
        curves |= {f"{g} ({r.records[0]['calibration']['method']})": (y[g], [x["calibrated"] for x in r.records])
                   for g, r in results.items() if r.records and "calibration" in r.records[0]}
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
            if len({recs[g][i]["relevant"] for g in graders}) > 1:
                cells = [f"{'✔' if recs[g][i]['relevant'] == rec['label'] else '✘'} "
                         f"{'' if recs[g][i]['score'] is None else round(recs[g][i]['score'], 2)}" for g in graders]
                found.append([rec["pair_id"], rec["query"], rec.get("document", ""), rec["label"], *cells])
        return [(f"Disagreements (s1-relevance): {len(found)} pairs", ["pair", "query", "document", "label", *graders],
                 found[:limit])]
