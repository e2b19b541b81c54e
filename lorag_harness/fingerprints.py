"""Grader fingerprints: what a cached judgment depends on."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_hashes(folder: str | None, patterns=("*.safetensors", "*.bin", "*.json")) -> dict[str, str]:
    if not folder or not Path(folder).is_dir():
        return {}
    out = {}
    for pattern in patterns:
        for f in sorted(Path(folder).glob(pattern)):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[f.name] = h.hexdigest()
    return out


def fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
