"""RAG P@5: a dense (FAISS) retriever over the held-out corpus; the grader filters and re-ranks."""
from __future__ import annotations

import numpy as np

from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval import first_stage as retrieval
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
from lorag_harness.api.task import TaskResult, pairwise
from lorag_harness.evaluation.stats import Metric, bootstrap, mean, paired_bootstrap

P5 = {"p@5": ranking.STANDARD["p@5"]}


class RagP5:
    """Retrieve top-k by embedding, let the grader keep and re-rank, P@5 against qrels.

    The grader keeps the documents it judges relevant, ranked as in ``ranking.order`` (score
    descending, ties in retriever order); the retriever alone and the legacy grader-judged P@5
    (share of the retriever's top 5 the grader keeps) are reported beside it."""

    name = "rag-p5"

    def __init__(self, k: int = 20, n_queries: int | None = None, embedder: str | None = None):
        if k < 5:
            raise LoragError("rag-p5 needs k >= 5")
        if n_queries is not None and n_queries < 1:
            raise LoragError("rag-p5 needs n_queries >= 1")
        self.k, self.n_queries, self.embedder = k, n_queries, embedder
        self._retrieved = None

    def queries(self, dataset):
        qs = [q for q in dataset.queries if q.query_id in dataset.qrels]
        return qs[: self.n_queries] if self.n_queries else qs

    def check(self, dataset) -> None:
        if not dataset.corpus or not self.queries(dataset):
            raise LoragError(f"task rag-p5: dataset {dataset.name!r} has no retrieval corpus, queries and qrels")

    def size(self, dataset) -> int:
        return len(self.queries(dataset)) * min(self.k, len(dataset.corpus))

    def retrieve(self, dataset) -> dict[str, list[tuple[int, float]]]:
        """query_id -> [(corpus index, cosine)], computed once per dataset."""
        if self._retrieved is not None and self._retrieved[0] is dataset:
            return self._retrieved[1]
        self.check(dataset)
        qs = self.queries(dataset)
        index = retrieval.first_stage("dense", dataset, self.embedder)
        out = {q.query_id: hits for q, hits in zip(qs, index.search([q.text for q in qs], self.k))}
        self._retrieved = (dataset, out)
        return out

    def run(self, dataset, judge) -> TaskResult:
        hits = self.retrieve(dataset)
        qs = self.queries(dataset)
        qrels = {q.query_id: dataset.qrels[q.query_id] for q in qs}
        retrieved = {q.query_id: [dataset.corpus[i].doc_id for i, _ in hits[q.query_id]] for q in qs}
        pairs = [Pair(q.text, dataset.corpus[i].text, bool(qrels[q.query_id].get(dataset.corpus[i].doc_id, 0) > 0),
                      q.topic, dataset.corpus[i].topic, f"{q.query_id}:{dataset.corpus[i].doc_id}")
                 for q in qs for i, _ in hits[q.query_id]]
        judgments = iter(judge(pairs))
        kept: dict[str, list[str]] = {}
        legacy: dict[str, float] = {}
        for q in qs:
            docs = retrieved[q.query_id]
            js = [next(judgments) for _ in docs]
            keep = [(d, j) for d, j in zip(docs, js) if j.relevant]
            kept[q.query_id] = ranking.order([d for d, _ in keep], [j for _, j in keep], {d: i for i, d in enumerate(docs)})
            legacy[q.query_id] = sum(1 for d, j in zip(docs[:5], js[:5]) if j.relevant) / 5
        p5 = ranking.per_query(P5, qrels, kept)["p@5"]
        base = ranking.per_query(P5, qrels, retrieved)["p@5"]
        order = sorted(qrels)
        records = [{"query_id": qid, "p@5": p5[qid], "retriever_p@5": base[qid], "judged_p@5": legacy[qid],
                    "kept": len(kept[qid]), "top5": kept[qid][:5],
                    "graded_rels": [qrels[qid].get(d, 0) for d in kept[qid]],
                    "retriever_rels": [qrels[qid].get(d, 0) for d in retrieved[qid]]} for qid in order]
        metrics = {
            "p@5": bootstrap(mean, np.array([p5[q] for q in order])),
            "retriever_p@5": bootstrap(mean, np.array([base[q] for q in order])),
            "judged_p@5_legacy": bootstrap(mean, np.array([legacy[q] for q in order])),
            "kept_per_query": Metric(float(np.mean([len(kept[q]) for q in order])), n=len(order), better=None),
        }
        return TaskResult(metrics, records, {"p@5": [p5[q] for q in order]})

    def compare(self, results):
        return pairwise(results, "p@5", paired_bootstrap)

    @classmethod
    def charts(cls, results, kmax: int = 10):
        """Precision at k = 1..kmax of the retriever and of each grader's kept ranking (HTML report)."""
        from lorag_harness.reports import plots

        if not all("graded_rels" in x for r in results.values() for x in r.records):
            return []  # a report written before rankings were recorded
        ks = list(range(1, kmax + 1))

        def curve(lists):
            return [float(np.mean([sum(1 for g in r[:k] if g > 0) / k for r in lists])) for k in ks]

        first = next(iter(results.values()))
        curves = {"retriever": (ks, curve([x["retriever_rels"] for x in first.records]))}
        curves.update({g: (ks, curve([x["graded_rels"] for x in r.records])) for g, r in results.items()})
        return [("P@k (rag-p5)", plots.lines(curves, "k", "P@k", "precision at k (rag-p5)", dashed=("retriever",)))]
