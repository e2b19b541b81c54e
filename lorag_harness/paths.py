"""Where lorag-harness keeps converted models and other caches."""
import os
from pathlib import Path


def cache_dir() -> Path:
    """Root cache folder: $LORAG_CACHE_DIR or ~/.cache/lorag-harness."""
    root = os.environ.get("LORAG_CACHE_DIR") or Path.home() / ".cache" / "lorag-harness"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
