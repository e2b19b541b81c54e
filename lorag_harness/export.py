"""Write a bench result to a file: json (more formats in report_formats)."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import LoragError
from .runner import BenchResult

SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def write_report(result: BenchResult, path: Path, fmt: str | None = None) -> Path:
    fmt = fmt or SUFFIXES.get(path.suffix.lower(), "json")
    if fmt == "json":
        text = json.dumps(result.to_dict(), indent=2, default=str)
    else:
        raise LoragError(f"unknown report format {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
