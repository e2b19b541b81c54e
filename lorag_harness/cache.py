"""SQLite store of judgments keyed by (grader fingerprint, pair hash): reuse and resume."""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .model import Judgment
from .paths import cache_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    grader TEXT NOT NULL,
    pair TEXT NOT NULL,
    reasons INTEGER NOT NULL,
    judgment TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (grader, pair, reasons)
)
"""


def default_path() -> Path:
    return cache_dir() / "judgments.sqlite"


class JudgmentCache:
    """Judgments stored as they are made; WAL mode lets readers run beside a writer.

    A judgment made with reasons also answers a request without reasons (an exact match wins)."""

    def __init__(self, path: str | Path | None = None):
        self.path = str(path) if path is not None else str(default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)

    def get_many(self, grader: str, pairs: list[str], reasons: bool) -> dict[str, Judgment]:
        found: dict[str, Judgment] = {}
        wanted = (1,) if reasons else (0, 1)
        with self._lock:
            for i in range(0, len(pairs), 500):
                chunk = pairs[i : i + 500]
                q = (f"SELECT pair, judgment FROM judgments WHERE grader = ? AND reasons IN ({','.join('?' * len(wanted))}) "
                     f"AND pair IN ({','.join('?' * len(chunk))}) ORDER BY reasons DESC")
                for pair, blob in self._db.execute(q, (grader, *wanted, *chunk)):
                    found[pair] = Judgment.from_dict(json.loads(blob))
        return found

    def put_many(self, grader: str, items: list[tuple[str, Judgment]], reasons: bool) -> None:
        rows = [(grader, pair, int(reasons), json.dumps(j.to_dict())) for pair, j in items]
        with self._lock, self._db:  # one transaction: a chunk is stored whole or not at all
            self._db.executemany("INSERT OR REPLACE INTO judgments (grader, pair, reasons, judgment) VALUES (?, ?, ?, ?)", rows)

    def count(self, grader: str | None = None) -> int:
        with self._lock:
            if grader is None:
                return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM judgments WHERE grader = ?", (grader,)).fetchone()[0]

    def clear(self) -> int:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM judgments").rowcount

    def close(self) -> None:
        self._db.close()
