"""Calibrations fitted on training pairs: their direction check, a store that keeps a fit across runs, and
the ``--calibrate isotonic|platt`` maps for graders whose scores are not probabilities.

A calibration maps a raw score to P(relevant) and must be increasing in it. When the training pairs
rank their negatives above their positives (fitted slope <= 0, or ROC-AUC below 0.5 with its whole
95% DeLong interval below), a fit on them would turn every ranking upside down: the run stops before
grading with :class:`InvertedPairs`, one line naming the pairs and the fix.

Fits are stored as small JSON files under ``<cache dir>/calibrations/``, keyed by the grader's
fingerprint and the hash of the training pairs (texts and labels), written atomically: a changed
model or training set gets a new key; a damaged file is ignored and fitted again."""
from __future__ import annotations

from dataclasses import dataclass

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from lorag_harness.errors import LoragError
from lorag_harness.paths import cache_dir


class InvertedPairs(LoragError):
    """Calibration pairs whose scores are anti-correlated with their labels."""


def auc_interval(labels, scores, confidence: float = 0.95) -> tuple[float, float, float]:
    """ROC-AUC of ``scores`` against binary ``labels`` and its DeLong interval (ties count half)."""
    y = np.asarray(labels, bool)
    s = np.asarray(scores, float)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError("auc_interval needs both labels")
    # placement values (DeLong 1988, by ranks as in Sun & Xu 2014)
    r_all = stats.rankdata(np.concatenate([pos, neg]))
    r_pos, r_neg = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (r_all[:m] - r_pos) / n  # per positive: share of negatives scored below it
    v01 = 1.0 - (r_all[m:] - r_neg) / m  # per negative: share of positives scored above it
    auc = float(v10.mean())
    var = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (np.var(v01, ddof=1) / n if n > 1 else 0.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * float(np.sqrt(max(var, 0.0)))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def direction(labels, scores) -> dict:
    """``{"auc", "auc_low", "auc_high", "pairs"}`` of the raw scores on the calibration pairs."""
    auc, low, high = auc_interval(labels, scores)
    return {"auc": round(auc, 4), "auc_low": round(low, 4), "auc_high": round(high, 4), "pairs": len(labels)}


def inverted(check: dict) -> bool:
    """A fitted slope <= 0, or an AUC whose whole interval lies below 0.5."""
    slope = check.get("slope")
    return (slope is not None and slope <= 0) or (check.get("auc_high") is not None and check["auc_high"] < 0.5)


def check_direction(check: dict, pairs: str, scorer: str, fix: str) -> None:
    """Raise :class:`InvertedPairs` (one line: the pairs, the figures, the fix) when ``check`` is inverted."""
    if not inverted(check):
        return
    figures = f"AUC {check['auc']:.2f}, 95% CI {check['auc_low']:.2f}–{check['auc_high']:.2f}"
    if check.get("slope") is not None:
        figures += f", fitted slope {check['slope']:.2f}"
    what = ("rank negatives above positives" if check["auc_high"] < 0.5 else
            "do not separate positives from negatives")
    raise InvertedPairs(f"training pairs of {pairs} {what} by {scorer} ({figures}); a calibration fitted on them "
                        f"would rank every candidate list upside down, so the run stops before grading. {fix}")


def describe_pairs(dataset, fallback: str | None = None) -> str:
    """How to name a dataset's training pairs in a message: ``beir:DIR (source)`` or the dataset's name."""
    if dataset is None:
        return fallback or "the given pairs"
    directory, source = getattr(dataset, "directory", ""), getattr(dataset, "train_source", "")
    if directory:
        return f"beir:{directory}" + (f" ({source})" if source else "")
    return getattr(dataset, "name", None) or fallback or "the given pairs"


def store_dir() -> Path:
    return cache_dir() / "calibrations"


def load(key: str) -> dict | None:
    """The stored fit for ``key``, or None (none stored, or a file that cannot be read: fitted again)."""
    path = store_dir() / f"{key}.json"
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("key") == key else None


def save(key: str, fit: dict) -> None:
    """Store ``fit`` for ``key`` atomically (a kill leaves the old file or the new one, never half);
    a cache folder that cannot be written only costs a refit next run."""
    folder = store_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(fit | {"key": key}, fh)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass


def check_manifest(manifest: dict, where: str) -> None:
    """A trained model whose stored calibration ranks its own calibration pairs upside down (the whole
    AUC interval below 0.5) is refused before grading, naming the model folder."""
    cal = manifest.get("calibration") or {}
    low, high = cal.get("auc_low"), cal.get("auc_high")
    if not isinstance(high, (int, float)) or isinstance(high, bool) or high >= 0.5:
        return
    raise InvertedPairs(f"{where}: the model ranks its {cal.get('on', 'training')} calibration pairs upside down "
                        f"(AUC {cal.get('auc', float('nan')):.2f}, 95% CI {low:.2f}–{high:.2f} on {cal.get('pairs', '?')} "
                        f"pairs), so its scores would invert every ranking; retrain it on pairs whose negatives are "
                        f"judged not relevant (its training negatives are probably relevant documents nobody judged)")


# ---- --calibrate isotonic|platt: a score-to-probability map for graders whose scores are not probabilities

METHODS = ("isotonic", "platt")


@dataclass
class Calibrator:
    method: str
    model: object
    n: int
    slope: float | None = None
    intercept: float | None = None

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, float)
        if self.method == "isotonic":
            return np.asarray(self.model.predict(s), float)
        return np.asarray(self.model.predict_proba(s.reshape(-1, 1))[:, 1], float)

    def info(self) -> dict:
        out = {"method": self.method, "pairs": self.n}
        if self.slope is not None:
            out |= {"slope": self.slope, "intercept": self.intercept}
        return out


def fit(method: str, labels, scores) -> Calibrator:
    """Isotonic regression (scikit-learn, ``increasing=True``, clipped to [0, 1] outside the training
    range) or Platt scaling (logistic regression on the score). A Platt fit whose slope is not positive
    (scores that fall as relevance rises) is refused: it would turn the grader's order around."""
    if method not in METHODS:
        raise LoragError(f"--calibrate: {method!r} is not isotonic or platt")
    y = np.asarray(labels, int)
    s = np.asarray(scores, float)
    if len(y) < 2 or len(np.unique(y)) < 2:
        raise LoragError(f"--calibrate {method}: needs training pairs of both labels (found {len(y)} pairs, "
                         f"labels {sorted(set(y.tolist()))})")
    if not np.all(np.isfinite(s)):
        raise LoragError(f"--calibrate {method}: a training score is not a finite number")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return Calibrator(method, model, len(y))
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6).fit(s.reshape(-1, 1), y)  # next to no penalty: Platt's fit
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not slope > 0:
        raise LoragError(f"--calibrate platt: on the {len(y)} training pairs the grader's scores fall as relevance "
                         f"rises (slope {slope:.3g}): no increasing calibration exists; use isotonic or check the grader")
    return Calibrator(method, model, len(y), slope, intercept)
