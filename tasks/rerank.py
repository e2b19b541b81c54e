"""Rerank: a first stage retrieves the top k per query, each grader's judgments reorder them,
ir-measures scores both against the human qrels (nDCG@10, MRR@10, MAP@100, P@5, Recall@k, judged@10)."""
from __future__ import annotations

import time

import numpy as np

from lorag_harness.retrieval import fusion as fusions
from lorag_harness.retrieval import random_order
from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval import first_stage as retrieval
from lorag_harness.retrieval import trec_runs
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
from lorag_harness.api.task import TaskResult, pairwise
from lorag_harness.evaluation.stats import Metric, bootstrap, mean, paired_randomization

PREFIX = "first_stage_"
PAIRED_ON = "ndcg@10"
RANDOM = "random_" + PAIRED_ON  # per query: the expected nDCG@10 of a random order of the same candidates
RANDOM_LABEL = "random order"


def judged_queries(dataset, n_queries: int | None = None):
    """The dataset's queries with at least one judged-relevant document, in file order, first ``n_queries``."""
    qs = [q for q in dataset.queries if any(g > 0 for g in dataset.qrels.get(q.query_id, {}).values())]
    return qs[:n_queries] if n_queries else qs


class Rerank:
    """First stage (bm25 or dense) top k, reranked by each grader, scored against human qrels.

    Order of the reranked list: ``lorag_harness.retrieval.metrics.order`` (score descending; judgments without
    a score after those with one, relevant before not relevant before undecided; ties keep the
    first-stage order). Recall@k is the first stage's: the ceiling of any reranking. ``fusion="rrf"``
    ranks by reciprocal rank fusion of that order with the first stage's (``retrieval.fusion``)."""

    name = "rerank"

    def __init__(self, k: int = 100, first_stage: str = "bm25", n_queries: int | None = None, embedder: str | None = None,
                 fusion: str = "none"):
        if fusion not in fusions.FUSIONS:
            raise LoragError(f"rerank: fusion must be one of {', '.join(fusions.FUSIONS)}, not {fusion!r}")
        if k < 1:
            raise LoragError(f"rerank: k must be >= 1, not {k}")
        if n_queries is not None and n_queries < 1:
            raise LoragError(f"rerank: n_queries must be >= 1, not {n_queries}")
        # run:FILE, a TREC run from any retriever, is read (and its syntax checked) now
        self._run = trec_runs.read_run(first_stage[len(trec_runs.PREFIX):]) if trec_runs.is_run(first_stage) else None
        if self._run is None:
            retrieval.check_first_stage(first_stage)
        self.k, self.first_stage, self.n_queries, self.embedder, self.fusion = k, first_stage, n_queries, embedder, fusion
        self._cands = None

    def queries(self, dataset):
        return judged_queries(dataset, self.n_queries)

    def check(self, dataset) -> None:
        if not dataset.corpus:
            raise LoragError(f"task rerank: dataset {dataset.name!r} has no retrieval corpus (use beir:DIR or jsonl:DIR)")
        if not self.queries(dataset):
            raise LoragError(f"task rerank: dataset {dataset.name!r} has no queries with judged-relevant documents")
        if self._run is not None:  # unknown documents, missing queries, ties: notes naming the lines
            return trec_runs.candidates(self._run, dataset, self.queries(dataset), self.k)[1]

    def size(self, dataset) -> int:
        if self._run is not None:
            return sum(len(c) for c in self.candidates(dataset)[0].values())
        return len(self.queries(dataset)) * min(self.k, len(dataset.corpus))

    def candidates(self, dataset) -> tuple[dict[str, list[str]], float]:
        """(query_id -> first-stage top-k doc ids, seconds to build the index and search), once per dataset."""
        if self._cands is not None and self._cands[0] is dataset:
            return self._cands[1], self._cands[2]
        self.check(dataset)
        if self._run is not None:
            start = time.perf_counter()
            cands = trec_runs.candidates(self._run, dataset, self.queries(dataset), self.k)[0]
            self._cands = (dataset, cands, self._run.seconds + time.perf_counter() - start)
            return cands, self._cands[2]
        index = retrieval.first_stage(self.first_stage, dataset, self.embedder)
        start = time.perf_counter()
        hits = retrieval.retrieve(self.first_stage, dataset, self.queries(dataset), self.k, self.embedder)
        seconds = index.seconds + time.perf_counter() - start  # building the index (once per run) and searching
        cands = {qid: [d for d, _ in row] for qid, row in hits.items()}
        self._cands = (dataset, cands, seconds)
        return cands, seconds

    def run(self, dataset, judge) -> TaskResult:
        cands, seconds = self.candidates(dataset)
        qs = self.queries(dataset)
        qrels = {q.query_id: dataset.qrels[q.query_id] for q in qs}
        by_id = {d.doc_id: d for d in dataset.corpus}
        pairs = [Pair(q.text, by_id[d].text, qrels[q.query_id].get(d, 0) > 0, q.topic, by_id[d].topic, f"{q.query_id}:{d}")
                 for q in qs for d in cands[q.query_id]]
        judgments = iter(judge(pairs))
        reranked = {}
        for q in qs:
            docs = cands[q.query_id]
            reranked[q.query_id] = ranking.order(docs, [next(judgments) for _ in docs])
            if self.fusion == "rrf":
                reranked[q.query_id] = fusions.rrf(reranked[q.query_id], docs)
        measures = ranking.standard_measures(recall_k=self.k, judged_k=10)
        after = ranking.per_query(measures, qrels, reranked)
        before = ranking.per_query(measures, qrels, cands)
        order = [q.query_id for q in qs]
        metrics = {name: bootstrap(mean, np.array([after[name][q] for q in order])) for name in measures}
        metrics |= {PREFIX + name: bootstrap(mean, np.array([before[name][q] for q in order])) for name in measures}
        metrics[PREFIX + "seconds"] = Metric(round(seconds, 3), better=None)
        records = [{"query_id": q, "first_stage": self.first_stage, "k": self.k, "fusion": self.fusion,
                    "ndcg@10": after["ndcg@10"][q], PREFIX + "ndcg@10": before["ndcg@10"][q],
                    "top10": reranked[q][:10], "top10_rels": [qrels[q].get(d, 0) for d in reranked[q][:10]],
                    "first_stage_top10": cands[q][:10],
                    # full lists and qrels: --save-runs writes TREC runs from them
                    "ranking": reranked[q], "first_stage_ranking": cands[q], "qrels": dict(qrels[q])} for q in order]
        paired = {PAIRED_ON: [after[PAIRED_ON][q] for q in order], PREFIX + PAIRED_ON: [before[PAIRED_ON][q] for q in order],
                  RANDOM: [random_order.expected_random_ndcg(qrels[q], cands[q]) for q in order], "query_ids": order}
        return TaskResult(metrics, records, paired)

    def compare(self, results):
        """Paired randomization tests on per-query nDCG@10: every pair of graders, each grader vs the first
        stage, and each grader vs a random order of the same candidates."""
        out = pairwise(results, PAIRED_ON, paired_randomization)
        for grader, r in sorted(results.items()):
            base = r.paired.get(PREFIX + PAIRED_ON)
            if base is not None:
                out.append({"a": grader, "b": _first_stage_label(r), "on": PAIRED_ON,
                            **paired_randomization(r.paired[PAIRED_ON], base)})
            if RANDOM in r.paired:
                out.append({"a": grader, "b": RANDOM_LABEL, "on": PAIRED_ON, **paired_randomization(r.paired[PAIRED_ON], r.paired[RANDOM])})
        return out

    def alerts(self, grader: str, result: TaskResult) -> list[str]:
        """A grader ranking the candidates significantly below a random order of them (paired
        randomization on per-query nDCG@10 against its exact expectation under a random order)."""
        if RANDOM not in result.paired or len(result.paired[RANDOM]) < 2:
            return []
        mine, rand = result.paired[PAIRED_ON], result.paired[RANDOM]
        found = random_order.worse_than_random(grader, paired_randomization(mine, rand), float(np.mean(mine)),
                                               float(np.mean(rand)), f"the {_first_stage_label(result).split(' ')[0]} candidates")
        return [f"rerank: {found}"] if found else []

    @classmethod
    def report_rows(cls, results):
        """The first stage alone, then one row per grader (first-stage metrics left out of grader rows)."""
        if not results:
            return []
        first = next(iter(results.values()))
        base = {k[len(PREFIX):]: m for k, m in first.metrics.items() if k.startswith(PREFIX) and k != PREFIX + "seconds"}
        seconds = first.metrics.get(PREFIX + "seconds")
        rows = [(_first_stage_label(first), base, seconds.value if seconds else None)]
        rows += [(_grader_label(g, r), {k: m for k, m in r.metrics.items() if not k.startswith(PREFIX)}, g)
                 for g, r in results.items()]
        return rows

    @classmethod
    def charts(cls, results):
        """Per-query nDCG@10 of the first stage and of each grader; per-query change over the first stage."""
        from lorag_harness.reports import plots

        if not results or not all(PREFIX + PAIRED_ON in r.paired for r in results.values()):
            return []
        first = next(iter(results.values()))
        label = _first_stage_label(first)
        values = {label: first.paired[PREFIX + PAIRED_ON]} | {g: r.paired[PAIRED_ON] for g, r in results.items()}
        dist = plots.distributions(values, "nDCG@10 per query", "per-query nDCG@10 (rerank)")
        n = len(first.paired[PAIRED_ON])
        deltas = {g: (list(range(1, n + 1)), sorted(np.subtract(r.paired[PAIRED_ON], r.paired[PREFIX + PAIRED_ON]), reverse=True))
                  for g, r in results.items()}
        delta = plots.lines(deltas, "queries, sorted", f"Δ nDCG@10 vs {label}", "gain over the first stage per query",
                            ylim=(-1.02, 1.02))
        return [("Per-query nDCG@10", dist), ("Per-query change over the first stage", delta)]


def _grader_label(grader: str, result) -> str:
    fusion = result.records[0].get("fusion", "none") if result.records else "none"
    return grader if fusion == "none" else f"{grader} + {fusion.upper()} with the first stage"


def _first_stage_label(result) -> str:
    rec = result.records[0] if result.records else {}
    return f"{rec.get('first_stage', 'first stage')}@{rec.get('k', '?')} (first stage)"
