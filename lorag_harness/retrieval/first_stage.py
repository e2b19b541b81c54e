"""First-stage retrievers over a dataset's corpus: ``bm25`` (bm25s) and ``dense`` (FAISS over the embedder).

Indexes are cached per (first stage, embedder, corpus) within a process, so every task and grader
of a run shares one index."""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Sequence

import numpy as np

from lorag_harness.errors import LoragError

FIRST_STAGES = ("bm25", "dense")
_INDEXES: OrderedDict = OrderedDict()
_MAX_INDEXES = 4


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best (index, score), score descending, ties by index (deterministic)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    if k < len(scores):
        kth = np.partition(-scores, k - 1)[k - 1]
        idx = np.flatnonzero(-scores <= kth)  # everything tied with the k-th score too
    else:
        idx = np.arange(len(scores))
    idx = idx[np.lexsort((idx, -scores[idx]))][:k]
    return [(int(i), float(scores[i])) for i in idx]


class BM25:
    """BM25 (bm25s, Lucene variant, k1 1.5, b 0.75) over English-stemmed, stopword-filtered tokens."""

    name = "bm25"

    def __init__(self, texts: Sequence[str]):
        import bm25s
        import Stemmer

        self._bm25s, self._stemmer = bm25s, Stemmer.Stemmer("english")
        self.n = len(texts)
        self.index = bm25s.BM25()
        self.index.index(self._tokens(texts), show_progress=False)

    def _tokens(self, texts):
        return self._bm25s.tokenize(list(texts), stopwords="en", stemmer=self._stemmer, return_ids=False,
                                    show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        out = []
        for tokens in self._tokens(queries):
            scores = self.index.get_scores(tokens) if tokens else np.zeros(self.n, np.float32)
            out.append(top_k(np.asarray(scores, dtype=np.float64), k))
        return out


class Dense:
    """Cosine over L2-normalised sentence embeddings, FAISS exact inner-product index."""

    name = "dense"

    def __init__(self, texts: Sequence[str], embedder: str | None = None):
        import faiss

        from lorag_harness.backends.embedder import embed

        self.embedder, self._embed = embedder, embed
        vecs = embed(list(texts), embedder)
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        k = min(k, self.index.ntotal)
        sims, ids = self.index.search(self._embed(list(queries), self.embedder), k)
        out = []
        for row_ids, row_sims in zip(ids, sims):
            hits = sorted(((int(i), float(s)) for i, s in zip(row_ids, row_sims) if i >= 0), key=lambda h: (-h[1], h[0]))
            out.append(hits)
        return out


def corpus_key(corpus) -> str:
    """Hash of the corpus: its ids and texts."""
    h = hashlib.sha256()
    for d in corpus:
        h.update(d.doc_id.encode())
        h.update(b"\x00")
        h.update(d.text.encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


def check_first_stage(name: str) -> None:
    if name not in FIRST_STAGES:
        raise LoragError(f"unknown first stage {name!r} (known: {', '.join(FIRST_STAGES)})")


def first_stage(name: str, dataset, embedder: str | None = None):
    """The (cached) first-stage index of ``dataset.corpus``; ``.seconds`` is its build time."""
    check_first_stage(name)
    if not dataset.corpus:
        raise LoragError(f"dataset {dataset.name!r} has no retrieval corpus for the {name} first stage")
    key = (name, embedder if name == "dense" else None, _dataset_corpus_key(dataset))
    if key in _INDEXES:
        _INDEXES.move_to_end(key)
        return _INDEXES[key]
    start = time.perf_counter()
    texts = [d.text for d in dataset.corpus]
    index = BM25(texts) if name == "bm25" else Dense(texts, embedder)
    index.seconds = time.perf_counter() - start
    _INDEXES[key] = index
    while len(_INDEXES) > _MAX_INDEXES:
        _INDEXES.popitem(last=False)
    return index


def _dataset_corpus_key(dataset) -> str:
    cached = getattr(dataset, "_corpus_key", None)
    if cached is None or cached[:2] != (id(dataset.corpus), len(dataset.corpus)):
        cached = (id(dataset.corpus), len(dataset.corpus), corpus_key(dataset.corpus))
        try:
            dataset._corpus_key = cached
        except AttributeError:  # a frozen dataset object: recompute next time
            pass
    return cached[2]


def retrieve(name: str, dataset, queries, k: int, embedder: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """query_id -> [(doc_id, first-stage score)], best first, for ``queries`` (objects with query_id, text)."""
    index = first_stage(name, dataset, embedder)
    queries = list(queries)
    hits = index.search([q.text for q in queries], k)
    return {q.query_id: [(dataset.corpus[i].doc_id, s) for i, s in row] for q, row in zip(queries, hits)}
