import math

import pytest

from lorag_harness.evaluation.stats import Metric, mcnemar_exact, paired_bootstrap, wilson
from lorag_harness.tasks.s1_relevance import relevance_metrics


def test_wilson_matches_hand_computation():
    # p = 3/5, z = 1.959964: centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    z, n, p = 1.959964, 5, 0.6
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    m = wilson(3, 5)
    assert m.value == 0.6
    assert m.low == pytest.approx(centre - half, abs=1e-6) and m.high == pytest.approx(centre + half, abs=1e-6)
    assert wilson(0, 0).value is None


def test_relevance_metrics_by_hand():
    labels = [True, True, False, False, True, False]
    predicted = [True, False, False, True, True, None]  # None = parse failure, counted as "not relevant"
    scores = [0.9, 0.4, 0.2, 0.6, 0.8, None]
    m = relevance_metrics(labels, predicted, scores)
    assert m["accuracy"].value == pytest.approx(4 / 6)  # tp=2 tn=2 fp=1 fn=1
    assert m["precision"].value == pytest.approx(2 / 3) and m["precision"].n == 3
    assert m["recall"].value == pytest.approx(2 / 3) and m["recall"].n == 3
    assert m["f1"].value == pytest.approx(2 / 3)
    assert m["f1"].low <= m["f1"].value <= m["f1"].high
    assert m["parse_failures"].value == 1
    assert m["roc_auc"].value is None  # a missing score: no AUC
    m = relevance_metrics(labels[:5], predicted[:5], scores[:5])
    # positives 0.9, 0.4, 0.8 vs negatives 0.2, 0.6: 5 of 6 pairs ordered right
    assert m["roc_auc"].value == pytest.approx(5 / 6)


def test_mcnemar_exact_by_hand():
    a = [1, 1, 0, 0, 0, 0, 1, 1]
    b = [1, 0, 1, 1, 1, 1, 1, 1]
    r = mcnemar_exact(a, b)
    assert (r["only_a"], r["only_b"]) == (1, 4)
    assert r["p_value"] == pytest.approx(2 * (1 + 5) / 32)  # two-sided binomial, n=5, k<=1
    assert mcnemar_exact([1, 0], [1, 0])["p_value"] == 1.0


def test_paired_bootstrap_detects_a_clear_difference():
    better = [0.8, 1.0, 0.6, 0.8, 1.0, 0.8, 0.6, 1.0, 0.8, 0.8]
    worse = [0.2, 0.4, 0.2, 0.0, 0.4, 0.2, 0.2, 0.4, 0.0, 0.2]
    r = paired_bootstrap(better, worse)
    assert r["mean_diff"] == pytest.approx(0.6)
    assert 0 < r["low"] < 0.6 < r["high"] and r["p_value"] < 0.01
    noise = paired_bootstrap([0.2, 0.4, 0.6, 0.4], [0.4, 0.2, 0.4, 0.6])
    assert noise["p_value"] > 0.3


def test_metric_formatting():
    assert Metric(0.5, 0.25, 0.75).plain() == "0.500 (0.25–0.75)"
    assert str(Metric(3)) == "3" and str(Metric(None)) == "–"


def test_vectorised_f1_and_auc_agree_with_sklearn():
    import numpy as np
    from sklearn.metrics import f1_score, roc_auc_score

    from lorag_harness.evaluation.stats import f1, roc_auc

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50).astype(bool)
    yhat = rng.integers(0, 2, 50).astype(bool)
    s = np.round(rng.random(50), 1)  # ties included
    assert float(f1(y, yhat)) == pytest.approx(f1_score(y, yhat))
    assert float(roc_auc(y, s)) == pytest.approx(roc_auc_score(y, s))
    batch = np.stack([y, ~y])
    assert f1(batch, np.stack([yhat, yhat])).shape == (2,)
