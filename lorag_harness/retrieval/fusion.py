"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009) of a grader's order with the first
stage's: score(d) = sum over rankings of 1 / (K + rank(d)), rank from 1, K = 60 as in the paper (not tuned
per collection). The field's hybrid of a lexical retriever with a reranker or dense model."""
from __future__ import annotations

from typing import Sequence

K = 60
FUSIONS = ("none", "rrf")


def rrf(*rankings: Sequence[str], k: int = K) -> list[str]:
    """The documents of the first ranking, ordered by fused score; ties keep the first ranking's order.
    A document missing from another ranking gets nothing from it."""
    first = list(rankings[0])
    score = {d: 0.0 for d in first}
    for ranking in rankings:
        for i, d in enumerate(ranking):
            if d in score:
                score[d] += 1.0 / (k + i + 1)
    at = {d: i for i, d in enumerate(first)}
    return sorted(first, key=lambda d: (-score[d], at[d]))
