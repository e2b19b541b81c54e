import math
from pathlib import Path

import numpy as np
import pytest
from beir_fixtures import write_beir

from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval import first_stage as retrieval
from lorag_harness.data.beir import load_beir
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment
from lorag_harness.tasks.judge_agreement import JudgeAgreement, kappa
from lorag_harness.tasks.rerank import Rerank

CISI = Path("/work/shared/data/cisi")


def judge_from(decide):
    """A judge function deciding each pair from its (query id, doc id)."""
    def judge(pairs, reasons=False):
        return [decide(*p.pair_id.split(":")[-2:]) for p in pairs]
    return judge


def test_order_scores_then_decisions_then_first_stage():
    docs = ["a", "b", "c", "d", "e", "f"]
    js = [Judgment(True, 0.2), Judgment(False, 0.9), Judgment(True, 0.2), Judgment(None), Judgment(True), Judgment(False)]
    assert ranking.order(docs, js) == ["b", "a", "c", "e", "f", "d"]
    assert ranking.order(docs, js, {"a": 5, "c": 1, "b": 0, "d": 2, "e": 3, "f": 4}) == ["b", "c", "a", "e", "f", "d"]


def test_metrics_of_a_known_ranking():
    qrels = {"q": {"x": 2, "y": 1, "z": 0}}
    got = ranking.per_query(ranking.standard_measures(recall_k=3), qrels, {"q": ["z", "y", "w", "x"]})
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    assert got["ndcg@10"]["q"] == pytest.approx(dcg / (2 + 1 / math.log2(3)))  # graded gains
    assert got["mrr@10"]["q"] == pytest.approx(0.5)
    assert got["p@5"]["q"] == pytest.approx(2 / 5)
    assert got["recall@3"]["q"] == pytest.approx(0.5)
    assert got["map@100"]["q"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert got["judged@10"]["q"] == pytest.approx(3 / 4)
    missing = ranking.per_query(ranking.STANDARD, {"q": {"x": 1}, "r": {"x": 1}}, {"q": ["x"]})
    assert missing["ndcg@10"] == {"q": 1.0, "r": 0.0}  # a query without a run scores 0


def test_rerank_on_a_tiny_collection(tmp_path):
    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0})
    task = Rerank(k=5)
    oracle = task.run(ds, judge_from(lambda q, d: Judgment(True, float(ds.qrels[q].get(d, 0)))))
    silent = task.run(ds, judge_from(lambda q, d: Judgment(False)))  # no scores, all "not relevant": first-stage order
    reverse = task.run(ds, judge_from(lambda q, d: Judgment(True, -float(ds.qrels[q].get(d, 0)))))
    cands, _ = task.candidates(ds)
    qs = [q.query_id for q in task.queries(ds)]
    assert qs == ["q1", "q2", "q3", "q4"]  # q5 has no judgment
    for rec in oracle.records:
        q = rec["query_id"]
        ideal = sorted(cands[q], key=lambda d: (-ds.qrels[q].get(d, 0), cands[q].index(d)))
        assert rec["top10"] == ideal[:10]
    for rec in silent.records:
        assert rec["top10"] == cands[rec["query_id"]][:10]
    m = oracle.metrics
    assert m["ndcg@10"].value >= m["first_stage_ndcg@10"].value and m["mrr@10"].value == 1.0
    assert silent.metrics["ndcg@10"].value == pytest.approx(m["first_stage_ndcg@10"].value)
    assert reverse.metrics["ndcg@10"].value < m["first_stage_ndcg@10"].value
    assert m["recall@5"].value == m["first_stage_recall@5"].value  # reranking keeps the candidate set
    rows = Rerank.report_rows({"oracle": oracle, "silent": silent})
    assert rows[0][0] == "bm25@5 (first stage)" and "first_stage_ndcg@10" not in rows[1][1]
    assert rows[0][1]["ndcg@10"].value == m["first_stage_ndcg@10"].value
    tests = task.compare({"oracle": oracle, "reverse": reverse})
    assert {(t["a"], t["b"]) for t in tests} == {("oracle", "reverse"), ("oracle", "bm25@5 (first stage)"),
                                                 ("reverse", "bm25@5 (first stage)"), ("oracle", "random order"),
                                                 ("reverse", "random order")}
    assert all(t["test"] == "paired-randomization" for t in tests)
    assert next(t for t in tests if t["b"] == "reverse")["mean_diff"] > 0


def test_rerank_checks_its_options_and_dataset(tmp_path, r8_small):
    with pytest.raises(LoragError, match="unknown first stage 'sparse'"):
        Rerank(first_stage="sparse")
    with pytest.raises(LoragError, match="k must be >= 1"):
        Rerank(k=0)
    from lorag_harness.api.types import Dataset

    with pytest.raises(LoragError, match="no retrieval corpus"):
        Rerank().check(Dataset("pairs-only", r8_small.train_pairs, r8_small.eval_pairs))


def test_kappa_and_judge_agreement_on_a_constructed_case(tmp_path):
    assert kappa([1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]) == pytest.approx(0.75)
    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0})
    task = JudgeAgreement(k=10, systems="bm25")
    pairs, _, _ = task.plan(ds)
    # q4: d10 relevant, d12 judged not relevant; the other queries' negatives are unjudged BM25 documents
    assert pairs["q4"] == [("d10", True, "relevant"), ("d12", False, "judged")]
    assert all(label == (ds.qrels[q].get(d, 0) > 0) for q, ps in pairs.items() for d, label, _ in ps)
    n_pos = sum(label for ps in pairs.values() for _, label, _ in ps)
    assert n_pos == 7 and sum(len(ps) for ps in pairs.values()) == 14
    wrong = {("q1", "d1")}  # the grader misses one relevant document
    result = task.run(ds, judge_from(lambda q, d: Judgment((ds.qrels[q].get(d, 0) > 0) and (q, d) not in wrong)))
    m = result.metrics
    assert (m["tp"].value, m["fn"].value, m["fp"].value, m["tn"].value) == (6, 1, 0, 7)
    po, pe = 13 / 14, (7 / 14) * (6 / 14) + (7 / 14) * (8 / 14)
    assert m["kappa"].value == pytest.approx((po - pe) / (1 - pe))
    assert m["accuracy"].value == pytest.approx(13 / 14) and m["unjudged_negatives"].value == 6


def test_kendall_tau_orders_systems_like_humans_only_for_a_good_judge(tmp_path):
    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0})
    task = JudgeAgreement(k=10, systems="bm25")
    rel = lambda q, d: ds.qrels[q].get(d, 0) > 0  # noqa: E731
    results = {"oracle": task.run(ds, judge_from(lambda q, d: Judgment(rel(q, d), float(rel(q, d))))),
               "contrarian": task.run(ds, judge_from(lambda q, d: Judgment(not rel(q, d), float(not rel(q, d)))))}
    by = {c["a"]: c for c in task.compare(results)}
    assert by["oracle"]["n_systems"] == 3 and by["oracle"]["test"] == "kendall-tau"
    assert by["oracle"]["tau"] == pytest.approx(1.0) and by["contrarian"]["tau"] < 0


RANX = """
import json, sys
from ranx import Qrels, Run, evaluate
metrics = sys.argv[2].split(",")
qrels = Qrels.from_file(sys.argv[1], kind="trec")
for run_file in sys.argv[3:]:
    out = evaluate(qrels, Run.from_file(run_file, kind="trec"), metrics)
    print(json.dumps({m: float(out) for m in metrics} if len(metrics) == 1 else {m: float(v) for m, v in out.items()}))
"""


def ranx_means(qrels_file, run_files, metrics) -> list[dict[str, float]]:
    """ranx's mean of each metric for each run file, in one subprocess with numba's JIT off (compiling its
    kernels takes minutes on a busy CPU)."""
    import json
    import os
    import subprocess
    import sys

    env = os.environ | {"NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run([sys.executable, "-c", RANX, str(qrels_file), ",".join(metrics), *map(str, run_files)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(run_files):]]
    assert len(out) == len(run_files), done.stdout
    return out


@pytest.mark.skipif(not CISI.is_dir(), reason="CISI collection not present")
@pytest.mark.integration  # the whole CISI collection
def test_bm25_run_on_cisi_matches_ranx(tmp_path):
    """Our metrics (ir-measures over our ordering) against ranx reading the TREC run file, to 1e-9."""
    ds = load_beir(str(CISI), {"train_fraction": 0})
    queries = [q for q in ds.queries if q.query_id in ds.qrels]
    hits = retrieval.retrieve("bm25", ds, queries, 100)
    rankings = {q: [d for d, _ in row] for q, row in hits.items()}
    run_file = ranking.write_trec_run(tmp_path / "bm25.run", rankings, "bm25")
    assert len(run_file.read_text().splitlines()) == 100 * len(queries) == 100 * 76
    ours = ranking.per_query(ranking.standard_measures(recall_k=100, judged_k=None), ds.qrels, rankings)
    graded = {q: {d: 1 + (int(d) % 3) for d in docs} for q, docs in ds.qrels.items()}  # a graded variant
    ours_graded = ranking.per_query({"ndcg@10": ranking.STANDARD["ndcg@10"]}, graded, rankings)
    for name, qrels, mine, names in (
        ("binary", ds.qrels, ours, {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "map@100": "map@100", "p@5": "precision@5",
                                    "recall@100": "recall@100"}),
        ("graded", graded, ours_graded, {"ndcg@10": "ndcg@10"}),
    ):
        qrels_file = ranking.write_trec_qrels(tmp_path / f"{name}.qrels", qrels)
        theirs, = ranx_means(qrels_file, [run_file], list(names.values()))
        for metric, ranx_name in names.items():
            assert np.mean(list(mine[metric].values())) == pytest.approx(theirs[ranx_name], abs=1e-9), (name, metric)
    assert 0.2 < np.mean(list(ours["ndcg@10"].values())) < 0.6  # BM25 on CISI is neither broken nor perfect


def test_reciprocal_rank_fusion_of_two_orders():
    from lorag_harness.retrieval.fusion import rrf

    # a: 1/61 + 1/63, b: 1/62 + 1/61, c: 1/63 + 1/62 -> b > a > c; a lone list is kept as it is
    assert rrf(["a", "b", "c"], ["b", "c", "a"]) == ["b", "a", "c"]
    assert rrf(["a", "b", "c"]) == ["a", "b", "c"]
    assert rrf(["x", "y"], ["y", "x"]) == ["x", "y"]  # a tie keeps the first ranking's order
    assert rrf(["a", "b"], ["z", "b"]) == ["b", "a"]  # z is not a candidate of the first ranking


def test_rerank_fusion_mixes_the_grader_with_the_first_stage(tmp_path):
    from lorag_harness.retrieval.fusion import rrf

    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0})
    reverse = judge_from(lambda q, d: Judgment(True, -float(ds.qrels[q].get(d, 0))))
    plain, fused = Rerank(k=5).run(ds, reverse), Rerank(k=5, fusion="rrf").run(ds, reverse)
    cands, _ = Rerank(k=5).candidates(ds)
    for p, f in zip(plain.records, fused.records):
        assert f["fusion"] == "rrf" and f["ranking"] == rrf(p["ranking"], cands[p["query_id"]])
    # the first stage pulls an inverted grader back up
    assert plain.metrics["ndcg@10"].value < fused.metrics["ndcg@10"].value
    assert Rerank.report_rows({"reverse": fused})[1][0] == "reverse + RRF with the first stage"
    with pytest.raises(LoragError, match="fusion must be one of none, rrf, not 'max'"):
        Rerank(fusion="max")
