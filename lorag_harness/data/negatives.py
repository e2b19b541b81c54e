"""Negatives that are honestly not relevant, with how each was drawn (``Pair.provenance``).

Judgments are shallow: a document nobody judged is not known to be irrelevant, and the best-ranked
unjudged ones often are relevant (TREC: unjudged is not "not relevant"). So negatives are, in order:
documents judged not relevant; then unjudged documents sampled from a first-stage **rank window**
(ranks ``lo``..``hi``, never the top ``lo``); then, if the window is short, random unjudged documents
ranked below ``lo``. The window shrinks with a small corpus (``lo`` at most a quarter of it)."""
from __future__ import annotations

import random

JUDGED = "judged-not-relevant"
RANDOM = "random-unjudged"
WINDOW = (30, 100)


def window_for(n_docs: int, window: tuple[int, int] = WINDOW) -> tuple[int, int]:
    """The rank window (0-based, end excluded) for a corpus of ``n_docs``."""
    lo = min(window[0], n_docs // 4)
    return lo, max(lo, min(window[1], n_docs))


def window_label(lo: int, hi: int, stage: str = "bm25") -> str:
    return f"{stage}-ranks-{lo + 1}-{hi}"


def draw(ranked: list[str], exclude: set[str], n: int, rng: random.Random, all_ids: list[str],
         window: tuple[int, int], stage: str = "bm25") -> list[tuple[str, str]]:
    """Up to ``n`` (doc_id, provenance) unjudged negatives: a seeded sample of the rank window of
    ``ranked`` (a first stage's order for the query, at least ``window[1]`` deep where the corpus
    allows), then random documents outside the top ``window[0]``. ``exclude``: judged documents."""
    if n <= 0:
        return []
    lo, hi = window
    top = set(ranked[:lo])
    pool = [d for d in ranked[lo:hi] if d not in exclude]
    out = [(d, window_label(lo, hi, stage)) for d in rng.sample(pool, min(n, len(pool)))]
    if len(out) < n:
        taken = {d for d, _ in out}
        rest = [d for d in all_ids if d not in exclude and d not in top and d not in taken]
        out += [(d, RANDOM) for d in rng.sample(rest, min(n - len(out), len(rest)))]
    return out
