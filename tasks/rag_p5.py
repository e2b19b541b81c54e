"""RAG P@5: a FAISS retriever over the held-out corpus; the grader filters and re-ranks."""
from __future__ import annotations

import faiss
import ir_measures
import numpy as np
from ir_measures import P

from lorag_harness.embedder import embed
from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl
from lorag_harness.model import Pair
from lorag_harness.results import TaskResult, pairwise
from lorag_harness.stats import Metric, bootstrap, mean, paired_bootstrap


def per_query(measure, qrels, run) -> dict[str, float]:
    values = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qrels, run)}
    return {q: values.get(q, 0.0) for q in qrels}  # a query with an empty run scores 0


class RagP5:
    """Retrieve top-k by embedding, let the grader keep and re-rank, P@5 against qrels."""

    name = "rag-p5"

    def __init__(self, k: int = 20, n_queries: int | None = None, embedder: str | None = None):
        if k < 5:
            raise LoragError("rag-p5 needs k >= 5")
        self.k, self.n_queries, self.embedder = k, n_queries, embedder
        self._retrieved = None

    def queries(self, dataset):
        qs = [q for q in dataset.queries if q.query_id in dataset.qrels]
        return qs[: self.n_queries] if self.n_queries else qs

    def size(self, dataset) -> int:
        return len(self.queries(dataset)) * min(self.k, len(dataset.corpus))

    def retrieve(self, dataset) -> dict[str, list[tuple[int, float]]]:
        """query_id -> [(corpus index, cosine)], computed once per dataset."""
        if self._retrieved is not None and self._retrieved[0] is dataset:
            return self._retrieved[1]
        if not dataset.corpus or not self.queries(dataset):
            raise LoragError(f"dataset {dataset.name!r} has no retrieval corpus, queries and qrels")
        vecs = embed([d.text for d in dataset.corpus], self.embedder)
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        qs = self.queries(dataset)
        sims, ids = index.search(embed([q.text for q in qs], self.embedder), min(self.k, len(dataset.corpus)))
        out = {q.query_id: [(int(i), float(s)) for i, s in zip(ids[r], sims[r]) if i >= 0] for r, q in enumerate(qs)}
        self._retrieved = (dataset, out)
        return out

    def run(self, dataset, judge) -> TaskResult:
        hits = self.retrieve(dataset)
        qs = self.queries(dataset)
        qrels = {q.query_id: dataset.qrels[q.query_id] for q in qs}
        pairs, keys = [], []
        for q in qs:
            for i, _ in hits[q.query_id]:
                d = dataset.corpus[i]
                pairs.append(Pair(q.text, d.text, bool(qrels[q.query_id].get(d.doc_id, 0) > 0), q.topic, d.topic,
                                  f"{q.query_id}:{d.doc_id}"))
                keys.append((q.query_id, d.doc_id))
        judgments = judge(pairs)
        retriever_run = {q.query_id: {dataset.corpus[i].doc_id: s for i, s in hits[q.query_id]} for q in qs}
        graded_run: dict[str, dict[str, float]] = {q.query_id: {} for q in qs}
        top5 = {qid: set(list(docs)[:5]) for qid, docs in retriever_run.items()}
        judged_top5 = {q.query_id: 0 for q in qs}
        for (qid, did), j in zip(keys, judgments):
            if j.relevant:
                graded_run[qid][did] = j.score if j.score is not None else 1.0
                judged_top5[qid] += did in top5[qid]
        p5 = per_query(P @ 5, qrels, graded_run)
        base = per_query(P @ 5, qrels, retriever_run)
        legacy = {qid: judged_top5[qid] / 5 for qid in qrels}
        order = sorted(qrels)
        records = []
        for qid in order:
            ranked = sorted(graded_run[qid], key=lambda d: (-graded_run[qid][d], d))
            records.append({"query_id": qid, "p@5": p5[qid], "retriever_p@5": base[qid], "judged_p@5": legacy[qid],
                            "kept": len(ranked), "top5": ranked[:5],
                            "graded_rels": [qrels[qid].get(d, 0) for d in ranked],
                            "retriever_rels": [qrels[qid].get(d, 0) for d in retriever_run[qid]]})
        metrics = {
            "p@5": bootstrap(mean, np.array([p5[q] for q in order])),
            "retriever_p@5": bootstrap(mean, np.array([base[q] for q in order])),
            "judged_p@5_legacy": bootstrap(mean, np.array([legacy[q] for q in order])),
            "kept_per_query": Metric(float(np.mean([len(graded_run[q]) for q in order])), n=len(order)),
        }
        return TaskResult(metrics, records, {"p@5": [p5[q] for q in order]})

    def compare(self, results):
        return pairwise(results, "p@5", paired_bootstrap)


@hookimpl
def register_tasks(register):
    register("rag-p5", RagP5)
