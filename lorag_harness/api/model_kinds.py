"""The kinds of model folder ``lorag train`` and ``lorag merge`` write, named in each folder's
``manifest.json`` (``kind``; S1/S2 adapters of earlier versions: ``stage``), and the grader that loads
each. Trainers check what an ``--out`` holds with them; graders refuse a folder of another kind."""
from __future__ import annotations

import json
from pathlib import Path

KINDS = {
    "s1-adapter": "an S1 adapter (lorag train s1)",
    "s2-adapter": "an S2 adapter (lorag train s2)",
    "cross-encoder": "a cross-encoder reranker (lorag train reranker)",
    "cls": "a classification-head model (lorag train cls)",
    "merged-model": "a merged model (lorag merge)",
    "embedding": "a fine-tuned embedder (lorag train embedding)",
}
GRADER_OF_KIND = {"embedding": "embedding", "cross-encoder": "cross-encoder", "cls": "cls", "s1-adapter": "s1",
                  "s2-adapter": "s2"}


def manifest_kind(manifest: dict) -> str | None:
    """The kind of model a harness manifest describes (None: not a manifest lorag wrote)."""
    kind = manifest.get("kind")
    if isinstance(kind, str) and kind in KINDS:
        return kind
    if manifest.get("stage") in ("s1", "s2") and "key" in manifest:  # adapters from before ``kind``
        return f"{manifest['stage']}-adapter"
    return None


def read_owner(path: Path) -> tuple[str | None, dict]:
    """(kind, manifest) of the model in ``path``; kind None when lorag did not write the manifest."""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, {}
    if not isinstance(manifest, dict):
        return None, {}
    return manifest_kind(manifest), manifest
