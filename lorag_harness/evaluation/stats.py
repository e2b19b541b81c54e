"""Confidence intervals and paired significance tests (scipy)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from lorag_harness.api.types import Metric


def wilson(k: int, n: int, confidence: float = 0.95) -> Metric:
    """Proportion k/n with its Wilson score interval."""
    if n == 0:
        return Metric(None, n=0)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Metric(k / n, float(ci.low), float(ci.high), n)


def bootstrap(statistic, *samples, n_resamples: int = 1000, seed: int = 0, paired: bool = True) -> Metric:
    """A statistic of paired samples with its percentile bootstrap interval.

    ``statistic(*samples, axis=-1)`` must be vectorised over ``axis`` (numpy style)."""
    value = float(statistic(*samples, axis=-1))
    if len(samples[0]) < 2:
        return Metric(value, n=len(samples[0]))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # constant resamples: interval = value
        res = stats.bootstrap(samples, statistic, paired=paired, vectorized=True, n_resamples=n_resamples,
                              method="percentile", rng=np.random.default_rng(seed))
    low, high = res.confidence_interval
    return Metric(value, float(np.nan_to_num(low, nan=value)), float(np.nan_to_num(high, nan=value)), len(samples[0]))


def mean(x, axis=-1):
    return np.mean(x, axis=axis)


def f1(y, yhat, axis=-1):
    """F1 of binary arrays along ``axis`` (0 where undefined)."""
    y, yhat = np.asarray(y, bool), np.asarray(yhat, bool)
    tp = np.sum(y & yhat, axis=axis)
    denom = np.sum(y, axis=axis) + np.sum(yhat, axis=axis)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def roc_auc(y, scores, axis=-1):
    """ROC-AUC along ``axis`` by the rank-sum (Mann-Whitney U) formula; NaN with one class."""
    y = np.asarray(y, bool)
    ranks = stats.rankdata(scores, axis=axis)
    n_pos = np.sum(y, axis=axis)
    n_neg = y.shape[axis] - n_pos
    u = np.sum(np.where(y, ranks, 0.0), axis=axis) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def mcnemar_exact(a_correct, b_correct) -> dict:
    """Exact McNemar test on paired correctness: binomial test on the discordant pairs."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(stats.binomtest(only_a, n, 0.5).pvalue)
    return {"test": "mcnemar-exact", "only_a": only_a, "only_b": only_b, "p_value": p}


def paired_bootstrap(x, y, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Mean difference x - y over paired units, its bootstrap interval and two-sided p-value."""
    d = np.asarray(x, float) - np.asarray(y, float)
    if len(d) < 2 or np.allclose(d, d[0]):
        return {"test": "paired-bootstrap", "mean_diff": float(d.mean()) if len(d) else 0.0,
                "low": float(d.mean()) if len(d) else 0.0, "high": float(d.mean()) if len(d) else 0.0,
                "p_value": 1.0 if (len(d) == 0 or d[0] == 0) else 0.0}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    # p-value: resampled means shifted to the null of zero mean difference
    p = float(np.mean(np.abs(means - d.mean()) >= abs(d.mean())))
    return {"test": "paired-bootstrap", "mean_diff": float(d.mean()), "low": float(low), "high": float(high), "p_value": p}


def paired_randomization(x, y, n_resamples: int = 10000, seed: int = 0) -> dict:
    """Two-sided paired randomization (sign-flip permutation) test on the mean difference x - y,
    the IR-standard significance test for per-query scores, with the paired bootstrap's interval."""
    d = np.asarray(x, float) - np.asarray(y, float)
    out = paired_bootstrap(x, y, seed=seed) | {"test": "paired-randomization"}
    if len(d) < 2 or np.allclose(d, 0):
        return out | {"p_value": 1.0}
    res = stats.permutation_test((d,), lambda v, axis=-1: np.mean(v, axis=axis), permutation_type="samples",
                                 vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                                 rng=np.random.default_rng(seed))
    return out | {"p_value": float(res.pvalue)}
