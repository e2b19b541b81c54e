import numpy as np
import pytest

from lorag_harness.graders.embedding import EmbeddingGrader
from lorag_harness.api.types import Judgment
from lorag_harness.tasks.rag_p5 import RagP5
from lorag_harness.tasks.s1_relevance import S1Relevance
from lorag_harness.tasks.s2_reasoning import S2Reasoning


class Oracle:
    """Knows the labels; flips the pairs whose index is in ``flip``."""

    def __init__(self, flip=(), reasons=None):
        self.flip, self.reasons, self.calls = set(flip), reasons, 0

    def __call__(self, pairs, reasons=False):
        self.calls += 1
        out = []
        for i, p in enumerate(pairs):
            rel = p.label != (i in self.flip)
            reason = self.reasons(p) if (reasons and self.reasons) else None
            out.append(Judgment(rel, float(rel), reason, raw_text="{}" if reason else "", parse_ok=reason is not None))
        return out


def test_s1_task_metrics_and_mcnemar(r8_small):
    task = S1Relevance()
    perfect = task.run(r8_small, Oracle())
    assert perfect.metrics["accuracy"].value == 1.0 and perfect.metrics["roc_auc"].value == 1.0
    flips = [0, 1, 2, 3]
    worse = task.run(r8_small, Oracle(flips))
    n = len(r8_small.eval_pairs)
    assert worse.metrics["accuracy"].value == pytest.approx((n - 4) / n)
    assert len(worse.records) == n and sum(not c for c in worse.paired["correct"]) == 4
    cmp, auc = task.compare({"perfect": perfect, "worse": worse})  # McNemar on decisions, DeLong on ROC-AUC
    assert auc["test"] == "delong" and auc["mean_diff"] > 0
    assert (cmp["a"], cmp["only_a"], cmp["only_b"]) == ("perfect", 4, 0)
    assert cmp["p_value"] == pytest.approx(2 / 16)


def test_s2_task_scores_reasons(r8_small):
    def right(p):
        return {"query_topic": p.query_topic, "document_topic": p.document_topic,
                "summary": r8_small.references[p.pair_id]["summary"]}

    good = S2Reasoning(limit=6).run(r8_small, Oracle(reasons=right))
    m = good.metrics
    assert m["json_valid"].value == 1.0 and m["reason_complete"].value == 1.0
    assert m["query_topic_acc"].value == 1.0 and m["doc_topic_acc"].value == 1.0
    assert m["summary_cosine"].value == pytest.approx(1.0, abs=1e-5) and m["summary_ratio"].value == 1.0
    wrong = S2Reasoning(limit=6).run(r8_small, Oracle(reasons=lambda p: {"query_topic": "sports", "document_topic": "",
                                                                         "summary": "nothing at all"}))
    assert wrong.metrics["reason_complete"].value == 0.0 and wrong.metrics["query_topic_acc"].value == 0.0
    assert wrong.metrics["summary_cosine"].value < 0.5
    none = S2Reasoning(limit=6).run(r8_small, Oracle())
    assert none.metrics["json_valid"].value == 0.0 and none.metrics["summary_cosine"].value == 0.0


def test_rag_p5_oracle_and_retriever(r8_small):
    task = RagP5(k=10)
    hits = task.retrieve(r8_small)
    oracle = task.run(r8_small, Oracle())
    for rec in oracle.records:
        qrel = r8_small.qrels[rec["query_id"]]
        ranked = [r8_small.corpus[i].doc_id for i, _ in hits[rec["query_id"]]]
        relevant_in_k = sum(qrel[d] for d in ranked)
        assert rec["p@5"] == pytest.approx(min(relevant_in_k, 5) / 5)  # the oracle keeps all relevant ones
        assert rec["retriever_p@5"] == pytest.approx(sum(qrel[d] for d in ranked[:5]) / 5)
        assert rec["judged_p@5"] == rec["retriever_p@5"]  # the oracle judges like the qrels
    assert oracle.metrics["p@5"].value >= oracle.metrics["retriever_p@5"].value
    rejecter = task.run(r8_small, lambda pairs, reasons=False: [Judgment(False, 0.0) for _ in pairs])
    assert rejecter.metrics["p@5"].value == 0.0 and rejecter.metrics["kept_per_query"].value == 0.0
    [cmp] = task.compare({"oracle": oracle, "none": rejecter})
    assert cmp["a"] == "none"  # pairs are named in sorted order: a - b
    assert cmp["mean_diff"] == pytest.approx(-oracle.metrics["p@5"].value)


def test_embedding_grader_calibration(r8_small):
    g = EmbeddingGrader(train_pairs=r8_small.train_pairs, topics=r8_small.topics)
    assert -1 < g.threshold < 1
    js = g.grade(r8_small.eval_pairs, reasons=True)
    acc = np.mean([j.relevant == p.label for j, p in zip(js, r8_small.eval_pairs)])
    assert acc > 0.7  # MiniLM separates Reuters topics well
    assert all(0 <= j.score <= 1 and (j.score >= 0.5) == j.relevant for j in js)
    assert all(j.reason["document_topic"] in r8_small.topics.values() for j in js)
