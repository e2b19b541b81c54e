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


def brier(y, p, axis=-1):
    """Brier score, the mean squared difference between P(relevant) and the 0/1 label (scikit-learn's
    ``brier_score_loss`` on one sample; the same sum vectorised along ``axis`` for bootstrap resamples)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if y.ndim == 1:
        from sklearn.metrics import brier_score_loss

        return float(brier_score_loss(y.astype(int), p, pos_label=1))
    return np.mean((p - y) ** 2, axis=axis)


ECE_BINS = 10


def ece(y, p, axis=-1, n_bins: int = ECE_BINS, strategy: str = "uniform"):
    """Expected calibration error: sum over bins of (share of pairs in the bin) × |fraction relevant −
    mean P(relevant)|. ``uniform``: ``n_bins`` equal-width bins on [0, 1] (1.0 in the last); ``quantile``:
    equal-mass bins (edges at the quantiles of ``p``; ties may leave bins unequal). Along the last axis."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if y.ndim > 1:
        flat_y, flat_p = y.reshape(-1, y.shape[-1]), p.reshape(-1, p.shape[-1])
        return np.asarray([ece(a, b, n_bins=n_bins, strategy=strategy) for a, b in zip(flat_y, flat_p)]).reshape(y.shape[:-1])
    if len(y) == 0:
        return float("nan")
    if strategy == "uniform":
        idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
        idx = np.searchsorted(edges[1:-1], p, side="right")
    else:
        raise ValueError(f"ece strategy must be 'uniform' or 'quantile', not {strategy!r}")
    gap = np.bincount(idx, weights=y, minlength=n_bins) - np.bincount(idx, weights=p, minlength=n_bins)
    return float(np.abs(gap).sum() / len(y))


def calibration_metrics(y, p, suffix: str = "") -> dict[str, Metric]:
    """Brier score and ECE (10 equal-width bins) of probabilities ``p``, with bootstrap intervals;
    lower is better. Undefined (None) when ``p`` is not in [0, 1] or a label is missing."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) == 0 or not np.all((p >= 0) & (p <= 1)) or len(np.unique(y)) < 2:
        return {f"brier{suffix}": Metric(None, better="lower"), f"ece{suffix}": Metric(None, better="lower")}
    return {f"brier{suffix}": bootstrap(brier, y, p).directed("lower"),
            f"ece{suffix}": bootstrap(ece, y, p, n_resamples=500).directed("lower")}


def delong(labels, a_scores, b_scores) -> dict:
    """DeLong's test for two correlated ROC-AUCs on the same pairs (fast midrank form, Sun & Xu 2014):
    AUC difference a - b, its 95% interval and two-sided p-value."""
    y = np.asarray(labels, bool)
    m, n = int(y.sum()), int((~y).sum())
    out = {"test": "delong", "on": "roc_auc"}
    if m < 2 or n < 2:
        return {**out, "mean_diff": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}
    aucs, v10, v01 = [], [], []
    for s in (np.asarray(a_scores, float), np.asarray(b_scores, float)):
        pos, neg = s[y], s[~y]
        tz = stats.rankdata(np.concatenate([pos, neg]))
        tx, ty = stats.rankdata(pos), stats.rankdata(neg)
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)  # per positive: share of negatives ranked below
        v01.append(1.0 - (tz[m:] - ty) / m)  # per negative: share of positives ranked above
    cov = np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    if var <= 1e-15:
        return {**out, "mean_diff": diff, "low": diff, "high": diff, "p_value": 1.0 if abs(diff) < 1e-12 else 0.0,
                "auc_a": float(aucs[0]), "auc_b": float(aucs[1])}
    se = var ** 0.5
    return {**out, "mean_diff": diff, "low": diff - 1.96 * se, "high": diff + 1.96 * se,
            "p_value": float(2 * stats.norm.sf(abs(diff) / se)), "auc_a": float(aucs[0]), "auc_b": float(aucs[1])}
