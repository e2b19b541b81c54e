"""Imbalanced prevalence: --positive-rate in the pair builder, precision/recall/F1/AP in
s1-relevance, the DeLong paired AUC test, thresholds that never see the evaluation pairs."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, roc_auc_score

from lorag_harness.cli.app import cli
from lorag_harness.data.builtin import orange_loader
from lorag_harness.api.types import Dataset


@pytest.mark.parametrize("rate", [0.123, 0.5, 0.8])
def test_pair_builder_makes_the_asked_share_of_relevant_pairs(rate):
    ds = orange_loader("reuters-r8")(None, {"n_train": 200, "n_eval": 100, "corpus_size": 20, "positive_rate": rate})
    for pairs in (ds.train_pairs, ds.eval_pairs):
        assert sum(p.label for p in pairs) == round(rate * len(pairs))
        assert len({(p.query, p.document) for p in pairs}) == len(pairs)  # no repeated pair
        assert all(p.label == (p.query_topic == p.document_topic) for p in pairs)


def test_default_rate_keeps_the_pairs_as_before():
    a = orange_loader("reuters-r8")(None, {"n_train": 40, "n_eval": 20, "corpus_size": 20})
    b = orange_loader("reuters-r8")(None, {"n_train": 40, "n_eval": 20, "corpus_size": 20, "positive_rate": 0.5})
    assert a.train_pairs == b.train_pairs and a.eval_pairs == b.eval_pairs


def test_average_precision_and_delong():
    from lorag_harness.tasks.s1_relevance import average_precision, delong

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.15
    a, b = y + rng.normal(0, 1, 300), 0.3 * y + rng.normal(0, 1, 300)
    assert average_precision(y, a) == pytest.approx(average_precision_score(y, a))
    stacked = average_precision(np.stack([y, y]), np.stack([a, b]))
    assert stacked == pytest.approx([average_precision_score(y, a), average_precision_score(y, b)])
    # stacked rows (bootstrap resamples) with tied scores and a row without positives, as scikit-learn
    ys = rng.random((40, 3, 30)) < rng.random((40, 3, 1))
    ys[0, 0] = False
    tied = np.round(rng.random((40, 3, 30)) * 4) / 4
    want = [[average_precision_score(r, t) if r.any() else np.nan for r, t in zip(a, b)] for a, b in zip(ys, tied)]
    assert average_precision(ys, tied) == pytest.approx(np.asarray(want), abs=1e-12, nan_ok=True)
    d = delong(y, a, b)
    assert d["mean_diff"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert d["p_value"] < 0.05 and d["low"] > 0
    same = delong(y, a, a)
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    # the interval matches a paired bootstrap of the AUC difference
    idx = rng.integers(0, 300, (300, 300))
    boot = [roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]) for i in idx if 0 < y[i].sum() < 300]
    assert (d["high"] - d["low"]) / 3.92 == pytest.approx(np.std(boot), rel=0.25)


@pytest.mark.integration  # the packaged MiniLM
def test_bench_at_low_prevalence_reports_ap_and_paired_auc_tests(tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["bench", "-g", "embedding,embedding:all-minilm-l6-v2", "-t", "s1-relevance",
                                      "--positive-rate", "0.125", "--eval-pairs", "64", "--train-pairs", "32",
                                      "--no-cache", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    m = report["results"]["s1-relevance"]["embedding"]["metrics"]
    assert m["positive_rate"]["value"] == pytest.approx(0.125)
    for key in ("precision", "recall", "f1", "average_precision"):
        assert m[key]["low"] <= m[key]["value"] <= m[key]["high"]
    assert {c["test"] for c in report["comparisons"]["s1-relevance"]} == {"mcnemar-exact", "delong"}


@pytest.mark.integration  # the packaged MiniLM
def test_decisions_do_not_depend_on_the_evaluation_pairs(r8_small):
    """Thresholds come from training pairs: the same pair gets the same decision whatever else is evaluated."""
    from lorag_harness.evaluation.runner import BenchConfig, run_bench

    shared = r8_small.eval_pairs[:8]
    decisions = []
    for extra in (r8_small.eval_pairs[8:], r8_small.eval_pairs[8:12]):
        ds = Dataset("r8", r8_small.train_pairs, shared + extra)
        cfg = BenchConfig(graders=["embedding"], tasks=["s1-relevance"], cache_path=":memory:")
        records = run_bench(cfg, dataset=ds).results["s1-relevance"]["embedding"].records[:8]
        decisions.append([(r["relevant"], r["score"]) for r in records])
    assert [d for d, _ in decisions[0]] == [d for d, _ in decisions[1]]
    np.testing.assert_allclose([s for _, s in decisions[0]], [s for _, s in decisions[1]], atol=1e-6)  # batch padding noise
