"""Grader fingerprints: what a cached judgment depends on."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path


def file_hashes(folder: str | None, patterns=("*.safetensors", "*.bin", "*.json")) -> dict[str, str]:
    """sha256 of the folder's files matching ``patterns`` ({} for no folder); each file is hashed
    once per process while its size and mtime stay the same."""
    if not folder or not Path(folder).is_dir():
        return {}
    out = {}
    for pattern in patterns:
        for f in sorted(Path(folder).glob(pattern)):
            st = f.stat()
            out[f.name] = _sha256(str(f.resolve()), st.st_size, st.st_mtime_ns)
    return out


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_files(name: str | None, default: str) -> dict:
    """``{"model_files": hashes}`` of a local model folder's weights and configs, so a folder rewritten
    in place (a new merge, a retrained model) gets a new fingerprint; {} (no key: fingerprints made
    before stay valid) for the packaged default and hub ids."""
    if not name or name == default or not Path(name).expanduser().is_dir():
        return {}
    return {"model_files": file_hashes(str(Path(name).expanduser()))}


def fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
