"""Score calibration for graders whose scores are not probabilities (``--calibrate isotonic|platt``):
a monotone increasing map from score to P(relevant), fitted on training pairs only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LoragError

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
