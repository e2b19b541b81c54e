"""SQLite store of judgments keyed by (grader fingerprint, pair hash): reuse and resume."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from lorag_harness.errors import GraderError, LoragError
from lorag_harness.api.types import Judgment
from lorag_harness.paths import cache_dir

TABLE = "judgments"
COLUMNS = {"grader", "pair", "reasons", "judgment", "created"}
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    grader TEXT NOT NULL,
    pair TEXT NOT NULL,
    reasons INTEGER NOT NULL,
    judgment TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (grader, pair, reasons)
)
"""
DAMAGED = ("not a database", "malformed", "corrupt", "not a judgments cache")
HEADER = b"SQLite format 3\0"


def default_path() -> Path:
    return cache_dir() / "judgments.sqlite"


class CacheError(LoragError):
    """The cache file cannot be used; the message says how to go on."""

    def __init__(self, path: str, problem: str, kind: str):
        self.path, self.problem, self.kind = path, problem, kind  # kind: damaged, read-only, foreign, unopenable
        option = "" if path == str(default_path()) else f" --cache {path}"
        fixes = {
            "damaged": f"`lorag cache clear{option}` moves it aside and starts a fresh cache, or move it away yourself",
            "bad-row": f"`lorag cache clear{option}` removes the stored judgments",
            "read-only": "make the file and its folder writable",
            "foreign": "lorag leaves it alone",
            "unopenable": "check that its folder exists and is writable",
        }[kind]
        super().__init__(f"judgment cache {path}: {problem}; {fixes} (or run with --no-cache, or --cache OTHER_FILE)")


def classify(e: sqlite3.Error, path: str | None = None) -> str:
    text = str(e).lower()
    if any(w in text for w in DAMAGED):
        return "foreign" if path and (_text_file(path) or not _ours(path)) else "damaged"
    if "readonly" in text or "read-only" in text:
        return "read-only"
    return "unopenable"


def _ours(path: str) -> bool:
    """An SQLite file (damaged inside), or the default cache file: what `cache clear` may move aside.
    A file without the SQLite header passed as --cache (a parquet or CSV file) is someone else's."""
    try:
        if Path(path).resolve() == default_path().resolve():
            return True
        with open(path, "rb") as fh:
            return fh.read(len(HEADER)) == HEADER
    except OSError:
        return False


def foreign_problem(path: str) -> str:
    return "a text file, not an SQLite database" if _text_file(path) else "not an SQLite database (no SQLite header)"


def _text_file(path: str) -> bool:
    """A UTF-8 text file (a report, a CSV passed as --cache by mistake): not ours to move aside."""
    try:
        head = Path(path).read_bytes()[:4096]
        head.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and not head.startswith(b"SQLite format 3")


class JudgmentCache:
    """Judgments stored as they are made; WAL mode lets readers run beside a writer.

    A judgment made with reasons also answers a request without reasons (an exact match wins).
    Opening checks that the file is a judgments database and (unless ``readonly``) that it can be
    written, so a damaged or read-only cache stops a run before any work, with a :class:`CacheError`."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = str(path) if path is not None else str(default_path())
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db = None
        try:
            self._db = self._open()
        except sqlite3.Error as e:
            self.close()
            kind = classify(e, self.path)
            raise CacheError(self.path, foreign_problem(self.path) if kind == "foreign" else str(e), kind) from None
        except CacheError:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise CacheError(self.path, e.strerror or str(e), "unopenable") from None

    def _open(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if not memory and Path(self.path).is_dir():
            raise CacheError(self.path, "is a folder, not a file", "unopenable")
        if self.readonly:
            if not Path(self.path).is_file():
                raise CacheError(self.path, "no such file", "unopenable")
            # immutable: readable even where the WAL side files cannot be created (a read-only folder)
            db = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)
            self._db = db
            self._check_schema(create=False)
            self._quick_check()
            return db
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db = db
        self._check_schema(create=False)  # before anything is written: another program's file stays untouched
        if not memory:
            self._quick_check()
            db.execute("PRAGMA journal_mode=WAL")
        self._check_schema(create=True)
        with db:  # a write that is rolled back: a read-only file fails here, before any work
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"INSERT OR REPLACE INTO {TABLE} (grader, pair, reasons, judgment) VALUES ('probe', 'probe', 0, '{{}}')")
            db.rollback()
        return db

    def _check_schema(self, create: bool) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if TABLE not in tables:
            if tables - {"sqlite_sequence"}:
                raise CacheError(self.path, f"an SQLite database but not a judgments cache (tables: {', '.join(sorted(tables))})",
                                 "foreign")
            if create:
                with self._db:
                    self._db.execute(SCHEMA)
            return
        columns = {r[1] for r in self._db.execute(f"PRAGMA table_info({TABLE})")}
        if not COLUMNS <= columns:
            raise CacheError(self.path, f"not a judgments cache (table {TABLE} lacks {', '.join(sorted(COLUMNS - columns))})",
                             "damaged")

    def _quick_check(self) -> None:
        """``PRAGMA quick_check``: a file damaged in the middle opens fine, then fails (or misleads) later."""
        row = self._db.execute("PRAGMA quick_check(1)").fetchone()
        if row and row[0] != "ok":
            raise CacheError(self.path, f"damaged (quick_check: {str(row[0]).splitlines()[0][:120]})", "damaged")

    def _has_table(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None

    def _run(self, fn):
        try:
            with self._lock:
                return fn()
        except sqlite3.Error as e:
            raise CacheError(self.path, str(e), classify(e)) from e

    def get_many(self, grader: str, pairs: list[str], reasons: bool) -> dict[str, Judgment]:
        wanted = (1,) if reasons else (0, 1)

        def read():
            found: dict[str, Judgment] = {}
            for i in range(0, len(pairs), 500):
                chunk = pairs[i : i + 500]
                q = (f"SELECT pair, judgment FROM {TABLE} WHERE grader = ? AND reasons IN ({','.join('?' * len(wanted))}) "
                     f"AND pair IN ({','.join('?' * len(chunk))}) ORDER BY reasons DESC")
                for pair, blob in self._db.execute(q, (grader, *wanted, *chunk)):
                    found[pair] = self._judgment(blob)
            return found

        return self._run(read)

    def _judgment(self, blob) -> Judgment:
        """A stored row as a Judgment; a row that is not one is blamed on the cache, with the fix."""
        try:
            d = json.loads(blob)
            if not isinstance(d, dict):
                raise ValueError(f"a JSON {type(d).__name__}, not an object")
            judgment = Judgment.from_dict(d)
            judgment.validate()
        except (ValueError, TypeError, GraderError) as e:
            raise CacheError(self.path, f"a stored judgment is not valid ({str(e).splitlines()[0][:120]})",
                             "bad-row") from None
        return judgment

    def put_many(self, grader: str, items: list[tuple[str, Judgment]], reasons: bool) -> None:
        rows = [(grader, pair, int(reasons), json.dumps(j.to_dict())) for pair, j in items]

        def write():
            with self._db:  # one transaction: a chunk is stored whole or not at all
                self._db.executemany(f"INSERT OR REPLACE INTO {TABLE} (grader, pair, reasons, judgment) VALUES (?, ?, ?, ?)", rows)

        self._run(write)

    def count(self, grader: str | None = None) -> int:
        def read():
            if not self._has_table():
                return 0
            if grader is None:
                return self._db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
            return self._db.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE grader = ?", (grader,)).fetchone()[0]

        return self._run(read)

    def clear(self) -> int:
        def delete():
            with self._db:
                return self._db.execute(f"DELETE FROM {TABLE}").rowcount

        return self._run(delete)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def set_aside(path: str | Path) -> Path:
    """Move a damaged cache file (and its WAL side files) to ``<file>.corrupt-<time>``; return the new name."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    for side in ("-wal", "-shm"):
        extra = path.with_name(path.name + side)
        if extra.exists():
            os.replace(extra, target.with_name(target.name + side))
    return target
