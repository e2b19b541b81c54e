"""Exceptions as one-line messages for the ``lorag`` command: user errors exit 2, anything else 1."""
from __future__ import annotations

import csv
import json
import sqlite3

from lorag_harness.errors import LoragError

INTERNAL = 1
USER = 2


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""


def describe(e: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an exception that reached the command line."""
    if isinstance(e, LoragError):
        return " ".join(str(e).split("\n")), USER
    if isinstance(e, UnicodeDecodeError):
        return (f"a file is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 "
                "(rerun with --debug to see which file)"), USER
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg} (rerun with --debug to see which file)", USER
    if isinstance(e, csv.Error):
        return f"invalid CSV: {_first_line(e)}", USER
    if isinstance(e, sqlite3.Error):
        from lorag_harness.evaluation.cache import default_path

        return (f"database error: {_first_line(e)}; if this is the judgment cache ({default_path()} unless --cache), "
                "run with --no-cache or --cache OTHER_FILE, or move the file away"), USER
    if isinstance(e, OSError):
        what = e.strerror or _first_line(e) or type(e).__name__
        files = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
        return (f"{files}: {what}" if files else what), USER
    return f"internal: {type(e).__name__}: {_first_line(e)} (rerun with --debug for the traceback)", INTERNAL
