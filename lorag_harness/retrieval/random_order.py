"""The random-order baseline of a reranking: what a grader that knows nothing would score.

Under a uniformly random permutation of a query's k candidates, every rank holds each candidate
with probability 1/k, so the expected DCG@n is the candidates' mean gain times the sum of the first
min(n, k) discounts, exactly (no sampling); the ideal DCG is the qrels' (trec_eval's nDCG: linear
gains, 1/log2(rank + 1) discounts, ideal ranking over every judged-relevant document)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

ALPHA = 0.05  # a grader below the random order with p under this is reported as worse than random


def expected_random_ndcg(judged: Mapping[str, int], candidates: Sequence[str], n: int = 10) -> float:
    """Expected nDCG@n of a uniformly random order of ``candidates`` under the query's qrels ``judged``."""
    if not candidates:
        return 0.0
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:n]
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
    if idcg <= 0:
        return 0.0
    mean_gain = float(np.mean([max(judged.get(d, 0), 0) for d in candidates]))
    discounts = sum(1 / np.log2(i + 2) for i in range(min(n, len(candidates))))
    return float(mean_gain * discounts / idcg)


def worse_than_random(grader: str, test: dict, grader_mean: float, random_mean: float, candidates: str) -> str | None:
    """The alert for a grader whose per-query nDCG@10 lies significantly below the random order's
    (``test``: a paired test of grader vs random order with ``mean_diff`` and ``p_value``), else None."""
    if test["mean_diff"] >= 0 or test["p_value"] >= ALPHA:
        return None
    return (f"WORSE THAN RANDOM: {grader} ranks {candidates} below a random order of the same candidates "
            f"(nDCG@10 {grader_mean:.3f} vs {random_mean:.3f} expected at random, paired randomization "
            f"p={test['p_value']:.3g}): its scores are probably inverted (a calibration with a negative slope, a "
            f"distance returned as a score, swapped labels); fix the grader (lorag exits 3 on this unless "
            f"--allow-worse-than-random)")
