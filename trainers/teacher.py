"""``--teacher SPEC`` of the grader trainers: any grader (an ``openai:`` judge too) grades each
training row's (query, positive) and (query, negative); the student learns the score margins
(MarginMSE, as in GPL and Hofstätter et al.'s cross-architecture distillation) instead of the labels."""
from __future__ import annotations

import math

from lorag_harness.api.types import Pair
from lorag_harness.errors import LoragError

PROBABILITY_CLIP = 1e-4  # log-odds of scores in [0, 1] are bounded at about +-9.2


def check_teacher(spec: str) -> None:
    """The grader named by ``spec`` exists and its cheap checks (paths, configs) pass: before any data
    is read or a model loaded."""
    from lorag_harness.api import registry

    if not spec or not spec.strip():
        raise LoragError("--teacher: give a grader spec, e.g. embedding:runs/emb or openai:MODEL")
    try:
        entry, arg = registry.lookup(registry.graders(), spec, "grader")
    except LoragError as e:
        raise LoragError(f"--teacher {spec}: {e}") from None
    check = getattr(entry.factory, "check", None)
    if callable(check):
        check(arg, registry.GraderContext())


def teacher_scores(spec: str, pairs: list[Pair], dataset, batch_size: int = 32, probe: int = 2) -> list[float]:
    """The teacher's score of every pair. The first ``probe`` pairs are graded alone first: a grader that
    gives no score is refused before the rest are graded."""
    from lorag_harness.api.registry import GraderContext
    from lorag_harness.evaluation.runner import build_grader

    grader = build_grader(spec, GraderContext(dataset=dataset))
    scores: list[float] = []
    bounds = [0, min(probe, len(pairs))] + list(range(min(probe, len(pairs)) + batch_size, len(pairs), batch_size)) + [len(pairs)]
    for lo, hi in zip(bounds, bounds[1:]):
        if lo >= hi:
            continue
        for j in grader.grade(pairs[lo:hi]):
            if j.score is None or not math.isfinite(j.score):
                raise LoragError(f"--teacher {spec}: gave a judgment without a score; distillation needs a grader "
                                 "that scores pairs (P(relevant) or a ranking score)")
            scores.append(float(j.score))
    return scores


def log_odds(p: float) -> float:
    p = min(max(p, PROBABILITY_CLIP), 1 - PROBABILITY_CLIP)
    return math.log(p / (1 - p))


def teacher_margins(spec: str, rows: list[dict], dataset, batch_size: int = 32, logits: bool = False) -> tuple[list[float], str]:
    """The teacher's score(query, positive) - score(query, negative) per row (GPL's pseudo labels), and
    the scale they are on. ``logits``: scores that are all probabilities are taken as log-odds first
    ("log-odds"), the scale of a cross-encoder's logit, where a probability's saturation near 0 and 1
    would flatten the margins; other scores stay as they are ("score")."""
    pairs = [Pair(r["anchor"], r[k], k == "positive") for r in rows for k in ("positive", "negative")]
    scores = teacher_scores(spec, pairs, dataset, batch_size)
    scale = "score"
    if logits and all(0.0 <= s <= 1.0 for s in scores):
        scores, scale = [log_odds(s) for s in scores], "log-odds"
    return [scores[2 * i] - scores[2 * i + 1] for i in range(len(rows))], scale
