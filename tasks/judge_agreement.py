"""Judge agreement: graders as relevance assessors, against the human qrels.

Per grader, on human-labelled pairs: Cohen's kappa, accuracy and the confusion matrix. Across
graders (``compare``), as TREC's LLM-judging studies report: Kendall's tau between the order of
the systems by mean nDCG@10 under human qrels and under the qrels this grader makes."""
from __future__ import annotations

import random

import numpy as np

from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval import first_stage as retrieval
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.stats import Metric, bootstrap, wilson
from lorag_harness.tasks.rerank import judged_queries

DEPTH = 10  # systems are compared by nDCG@10; every system's top 10 is in the pool


def kappa(y, yhat, axis=-1):
    """Cohen's kappa of two binary label arrays along ``axis`` (vectorised for the bootstrap); NaN if undefined."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    po = np.mean(y == yhat, axis=axis)
    pe = np.mean(y, axis=axis) * np.mean(yhat, axis=axis) + np.mean(1 - y, axis=axis) * np.mean(1 - yhat, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)


class JudgeAgreement:
    """Graders' decisions against human labels (kappa, accuracy, confusion matrix) and Kendall tau of
    system rankings under grader-made vs human qrels.

    Pairs per query: up to ``max_positives`` judged-relevant documents (seeded sample) and as many
    negatives: documents judged not relevant (grade <= 0) first, then documents of the first stage's
    top ``negatives_depth`` that humans did not judge (taken as not relevant, the trec_eval convention).
    Systems: each first stage in ``systems`` alone, and every grader of the bench reranking the
    ``first_stage`` top ``k``. The pool each grader judges is the union of every system's top 10."""

    name = "judge-agreement"

    def __init__(self, k: int = 20, first_stage: str = "bm25", systems: str = "bm25,dense", n_queries: int | None = None,
                 max_positives: int = 10, negatives_depth: int = 100, seed: int = 13, embedder: str | None = None):
        if k < DEPTH:
            raise LoragError(f"judge-agreement: k must be >= {DEPTH}, not {k}")
        if n_queries is not None and n_queries < 1:
            raise LoragError(f"judge-agreement: n_queries must be >= 1, not {n_queries}")
        if max_positives < 1 or negatives_depth < 1:
            raise LoragError("judge-agreement: max_positives and negatives_depth must be >= 1")
        self.systems = [s.strip() for s in systems.split(",") if s.strip()] if isinstance(systems, str) else list(systems)
        for name in [first_stage, *self.systems]:
            retrieval.check_first_stage(name)
        self.k, self.first_stage, self.n_queries = k, first_stage, n_queries
        self.max_positives, self.negatives_depth, self.seed, self.embedder = max_positives, negatives_depth, seed, embedder
        self._plan = None

    def queries(self, dataset):
        return judged_queries(dataset, self.n_queries)

    def check(self, dataset) -> None:
        if not dataset.corpus or not self.queries(dataset):
            raise LoragError(f"task judge-agreement: dataset {dataset.name!r} needs a corpus and queries with "
                             "judged-relevant documents (use beir:DIR)")

    def size(self, dataset) -> int:
        pairs, pool, _ = self.plan(dataset)
        return sum(len(v) for v in pairs.values()) + sum(len(a) + len(b) for a, b in pool.values())

    def plan(self, dataset):
        """(query_id -> [(doc_id, human label, kind)], query_id -> (the first stage's top k, the other systems'
        pooled documents), first-stage top-10 runs), computed once per dataset."""
        if self._plan is not None and self._plan[0] is dataset:
            return self._plan[1]
        self.check(dataset)
        qs = self.queries(dataset)
        depth = max(self.k, self.negatives_depth)
        main = retrieval.retrieve(self.first_stage, dataset, qs, depth, self.embedder)
        runs = {s: ({q: [d for d, _ in hits[:DEPTH]] for q, hits in main.items()} if s == self.first_stage else
                    {q: [d for d, _ in hits] for q, hits in retrieval.retrieve(s, dataset, qs, DEPTH, self.embedder).items()})
                for s in self.systems}
        rng = random.Random(self.seed)
        pairs, pool = {}, {}
        for q in qs:
            judged = dataset.qrels[q.query_id]
            pos = sorted(d for d, g in judged.items() if g > 0)
            pos = sorted(rng.sample(pos, min(len(pos), self.max_positives)))
            neg = sorted(d for d, g in judged.items() if g <= 0)
            neg = [(d, "judged") for d in rng.sample(neg, min(len(neg), len(pos)))]
            unjudged = [d for d, _ in main[q.query_id][: self.negatives_depth] if d not in judged]
            neg += [(d, "unjudged") for d in rng.sample(unjudged, min(len(unjudged), len(pos) - len(neg)))]
            pairs[q.query_id] = [(d, True, "relevant") for d in pos] + [(d, False, kind) for d, kind in neg]
            candidates = [d for d, _ in main[q.query_id][: self.k]]
            extra = [d for run in runs.values() for d in run[q.query_id] if d not in candidates]
            pool[q.query_id] = (candidates, list(dict.fromkeys(extra)))
        plan = (pairs, pool, runs)
        self._plan = (dataset, plan)
        return plan

    def run(self, dataset, judge) -> TaskResult:
        pairs, pool, runs = self.plan(dataset)
        qs = self.queries(dataset)
        by_id = {d.doc_id: d for d in dataset.corpus}
        asked = [(q, d, label, kind) for q in qs for d, label, kind in pairs[q.query_id]]
        pooled = [(q, d) for q in qs for part in pool[q.query_id] for d in part]
        items = [Pair(q.text, by_id[d].text, label, pair_id=f"{q.query_id}:{d}") for q, d, label, _ in asked]
        items += [Pair(q.text, by_id[d].text, dataset.qrels[q.query_id].get(d, 0) > 0, pair_id=f"{q.query_id}:{d}")
                  for q, d in pooled]
        judgments = judge(items)
        labelled, pool_js = judgments[: len(asked)], judgments[len(asked):]

        y = np.array([label for _, _, label, _ in asked], bool)
        decided = [j.relevant for j in labelled]
        yhat = np.array([bool(r) for r in decided], bool)  # undecided counts as not relevant
        tp, fp = int(np.sum(y & yhat)), int(np.sum(~y & yhat))
        fn, tn = int(np.sum(y & ~yhat)), int(np.sum(~y & ~yhat))
        from sklearn.metrics import cohen_kappa_score

        k_value = float(cohen_kappa_score(y, yhat)) if len(set(y.tolist()) | set(yhat.tolist())) > 1 else float("nan")
        k_metric = bootstrap(kappa, y, yhat) if np.isfinite(k_value) else Metric(None, n=len(y))
        if k_metric.value is not None:
            k_metric.value = k_value  # scikit-learn's value; the interval from the bootstrap
        kinds = [kind for *_, kind in asked]
        metrics = {
            "kappa": k_metric,
            "accuracy": wilson(int(np.sum(y == yhat)), len(y)),
            "tp": Metric(tp, better=None), "fp": Metric(fp, better=None),
            "fn": Metric(fn, better=None), "tn": Metric(tn, better=None),
            "undecided": Metric(sum(r is None for r in decided), n=len(y), better="lower"),
            "unjudged_negatives": Metric(kinds.count("unjudged"), n=len(y), better=None),
        }
        decisions = iter(pool_js)
        records = []
        for q in qs:
            candidates, extra = pool[q.query_id]
            docs = candidates + extra
            js = [next(decisions) for _ in docs]
            rerank = ranking.order(candidates, js[: len(candidates)])
            records.append({"query_id": q.query_id, "human": dict(dataset.qrels[q.query_id]),
                            "grader_qrels": {d: int(bool(j.relevant)) for d, j in zip(docs, js)},
                            "runs": {s: runs[s][q.query_id] for s in self.systems} | {"rerank": rerank[:DEPTH]}})
        labels = {"y": y.tolist(), "yhat": yhat.tolist()}
        return TaskResult(metrics, records, labels)

    def compare(self, results):
        """Kendall's tau, per grader, between system orders by mean nDCG@10 under human and grader qrels."""
        from scipy.stats import kendalltau

        systems = system_runs(results)
        if len(systems) < 2:
            return []
        human = {q["query_id"]: q["human"] for q in next(iter(results.values())).records}
        human_scores = system_scores(systems, human)
        out = []
        for grader, r in sorted(results.items()):
            made = {q["query_id"]: q["grader_qrels"] for q in r.records}
            scores = system_scores(systems, made)
            names = sorted(systems)
            tau, p = kendalltau([human_scores[s] for s in names], [scores[s] for s in names])
            defined = bool(np.isfinite(tau))  # undefined when every system ties under one of the qrels
            out.append({"a": grader, "b": "human qrels", "on": "systems by nDCG@10", "test": "kendall-tau",
                        "tau": float(tau) if defined else None, "n_systems": len(names),
                        "p_value": float(p) if defined else 1.0,
                        "human": {s: human_scores[s] for s in names}, "grader": {s: scores[s] for s in names}})
        return out

    @classmethod
    def charts(cls, results):
        from lorag_harness.reports import plots

        cms = {g: np.array([[r.metrics["tn"].value, r.metrics["fp"].value], [r.metrics["fn"].value, r.metrics["tp"].value]])
               for g, r in results.items() if "tp" in r.metrics}
        return [("Grader vs human labels", plots.confusion_matrices(cms, xlabel="grader", ylabel="human"))] if cms else []


def system_runs(results) -> dict[str, dict[str, list[str]]]:
    """system name -> query_id -> top-10: the first stages, and each grader's rerank."""
    if not results:
        return {}
    first = next(iter(results.values()))
    systems = {s: {q["query_id"]: q["runs"][s] for q in first.records} for s in first.records[0]["runs"] if s != "rerank"}
    for grader, r in results.items():
        systems[f"rerank:{grader}"] = {q["query_id"]: q["runs"]["rerank"] for q in r.records}
    return systems


def system_scores(systems, qrels) -> dict[str, float]:
    measure = {"ndcg@10": ranking.STANDARD["ndcg@10"]}
    return {s: float(np.mean(list(ranking.per_query(measure, qrels, run)["ndcg@10"].values()))) for s, run in systems.items()}
