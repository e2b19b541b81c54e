"""Calibration as numbers: Brier score and ECE per grader in every report format, with intervals;
--calibrate isotonic|platt fitted on training pairs only, monotone increasing."""
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import brier_score_loss

from lorag_harness.evaluation.calibration import fit
from lorag_harness.cli.app import cli
from lorag_harness.errors import LoragError
from lorag_harness.reports.files import render
from lorag_harness.api.types import Dataset, Judgment, Pair
from lorag_harness.evaluation.runner import BenchResult
from lorag_harness.evaluation.stats import brier, calibration_metrics, ece
from lorag_harness.tasks.s1_relevance import S1Relevance


def test_brier_and_ece_by_hand():
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert brier(y, p) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert brier(np.array([y, y]), np.array([p, p]))[1] == pytest.approx(brier(y, p))  # vectorised for the bootstrap
    assert ece(y, p) == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)  # every pair alone in its equal-width bin
    # equal-mass, 2 bins: {0.1, 0.35} and {0.4, 0.8}
    assert ece(y, p, n_bins=2, strategy="quantile") == pytest.approx((abs(1 - 0.45) + abs(1 - 1.2)) / 4)
    assert ece([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) == 0.0  # 1.0 falls in the last bin
    m = calibration_metrics([0, 1] * 20, np.linspace(0.05, 0.95, 40))
    assert m["brier"].better == "lower" and m["ece"].better == "lower"
    assert m["brier"].low <= m["brier"].value <= m["brier"].high and m["ece"].low < m["ece"].high
    assert calibration_metrics([0, 1], [-2.0, 3.0])["brier"].value is None  # not probabilities


def test_calibrators_are_monotone_increasing_and_platt_checks_its_slope():
    rng = np.random.default_rng(0)
    s = rng.normal(size=400)
    y = (s + rng.normal(scale=1.0, size=400)) > 0.5
    grid = np.linspace(-4, 4, 101)
    for method in ("isotonic", "platt"):
        cal = fit(method, y, s)
        out = cal(grid)
        assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1, method
        assert out[-1] > out[0]
    assert fit("platt", y, s).info()["slope"] > 0
    with pytest.raises(LoragError, match="scores fall as relevance rises"):
        fit("platt", y, -s)
    flat = fit("isotonic", y, -s)(grid)  # isotonic on anti-correlated scores: increasing, hence near flat
    assert np.all(np.diff(flat) >= 0)
    with pytest.raises(LoragError, match="both labels"):
        fit("isotonic", [True, True], [0.1, 0.2])


def _pairs(n, seed, prefix):
    rng = np.random.default_rng(seed)
    return [Pair(f"q{i}", f"{prefix} doc {i}", bool(rng.random() < 0.5), pair_id=f"{prefix}{i}") for i in range(n)]


def _logit_judge_for(pairs):
    """Scores are logits (not probabilities), fixed per pair id from its original label plus noise."""
    rng = np.random.default_rng(7)
    logit = {p.pair_id: (1.5 if p.label else -0.5) + rng.normal(scale=1.5) for p in pairs}

    def judge(batch, reasons=False):
        return [Judgment(logit[p.pair_id] > 0.5, float(logit[p.pair_id])) for p in batch]
    return judge


def test_calibration_is_fitted_on_training_pairs_only():
    train, evals = _pairs(120, 1, "t"), _pairs(60, 2, "e")
    ds = Dataset("toy", train, evals)
    _logit_judge = _logit_judge_for(train + evals)
    raw = S1Relevance().run(ds, _logit_judge)
    assert raw.metrics["brier"].value is None and "brier_cal" not in raw.metrics  # logits: no Brier without --calibrate
    task = S1Relevance(calibrate="platt")
    res = task.run(ds, _logit_judge)
    cal = fit("platt", [p.label for p in train], [j.score for j in _logit_judge(train)])
    want = cal([j.score for j in _logit_judge(evals)])
    assert [r["calibrated"] for r in res.records] == pytest.approx(list(want))
    assert res.metrics["brier_cal"].value == pytest.approx(brier([p.label for p in evals], want))
    assert res.records[0]["calibration"]["pairs"] == 120
    # other evaluation labels, same training pairs: the same map
    flipped = Dataset("toy", train, [replace(p, label=not p.label) for p in evals])
    again = task.run(flipped, _logit_judge)
    assert [r["calibrated"] for r in again.records] == [r["calibrated"] for r in res.records]
    assert task.size(ds) == 180
    with pytest.raises(LoragError, match="fitted on training pairs of both labels"):
        task.check(Dataset("toy", [], evals))


def test_every_report_format_shows_calibration(tmp_path):
    out = tmp_path / "r.json"
    args = ["bench", "--no-cache", "-g", "embedding", "-t", "s1-relevance", "--eval-pairs", "40", "--train-pairs", "60",
            "--calibrate", "isotonic", "--out", str(out)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    for name in ("brier", "ece", "brier_cal", "ece_cal"):
        assert name in done.output
    data = json.loads(out.read_text())
    m = data["results"]["s1-relevance"]["embedding"]["metrics"]
    for name in ("brier", "ece", "brier_cal", "ece_cal"):
        assert m[name]["better"] == "lower" and m[name]["low"] <= m[name]["value"] <= m[name]["high"], name
    result = BenchResult.from_dict(data)
    md, page = render(result, "markdown"), render(result, "html")
    header = next(line for line in md.splitlines() if line.startswith("| grader |"))
    assert all(f"| {n} |" in header for n in ("brier", "ece", "brier_cal", "ece_cal")), header
    assert f"{m['ece']['value']:.3f}" in md and f"{m['ece_cal']['value']:.3f}" in page
    assert data["results"]["s1-relevance"]["embedding"]["records"][0]["calibration"] == {"method": "isotonic", "pairs": 60}
