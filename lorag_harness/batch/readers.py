"""Numbered, checked pair rows from a ``.jsonl`` or ``.parquet`` file, read in chunks (never whole).

A row is ``{"id"?, "query", "document", "label"?, "query_topic"?, "document_topic"?}``. Its number is
its line number in a jsonl file (blank lines are skipped but counted) and its 1-based position in a
parquet file; ``id`` defaults to that number. A bad row stops the read with the file and number.

Reading starts from a *cursor*: ``(byte offset, line number)`` in a jsonl file, a 0-based row index
in a parquet file; ``locate(n)`` gives the cursor after the first ``n`` rows (resume), ``shards``
cuts the rest into cursors ``rows_per_shard`` rows apart (one Ray read task each).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lorag_harness.data.readers import parse_label
from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Pair

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
OPTIONAL_TEXT = ("query_topic", "document_topic")
COLUMNS = ("id", "query", "document", "label", *OPTIONAL_TEXT)


def file_format(path: str | Path, option: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LoragError(f"{option} {path}: unknown format {suffix or '(no suffix)'!r} (expected .jsonl or .parquet)")
    return FORMATS[suffix]


@dataclass(frozen=True)
class Row:
    number: int  # jsonl: line number; parquet: 1-based row
    id: str
    pair: Pair


def parse_row(obj, source: str, number: int) -> Row:
    """Check one input row; raise DataError naming the file and row number."""
    if not isinstance(obj, dict):
        raise DataError(source, number, "expected a JSON object")
    text = {}
    for name in ("query", "document"):
        value = obj.get(name)
        if value is None:
            raise DataError(source, number, f"missing field {name!r}")
        if not isinstance(value, str):
            raise DataError(source, number, f"field {name!r} must be a string, not {type(value).__name__}")
        if not value.strip():
            raise DataError(source, number, f"field {name!r} is empty")
        text[name] = value
    rid = obj.get("id")
    if rid is None:
        rid = str(number)
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise DataError(source, number, f"field 'id' must be a string or an integer, not {type(rid).__name__}")
    else:
        rid = str(rid)
        if not rid.strip():
            raise DataError(source, number, "field 'id' is empty")
    label = obj.get("label")
    label = None if label is None else parse_label(label, Path(source), number)
    topics = {}
    for name in OPTIONAL_TEXT:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise DataError(source, number, f"field {name!r} must be a string, not {type(value).__name__}")
        topics[name] = value or None
    # label None: an unlabelled pair (graders never read labels while grading)
    return Row(number, rid, Pair(text["query"], text["document"], label, topics["query_topic"],
                                 topics["document_topic"], pair_id=rid))


class PairFile:
    """An input file of pairs; opening it checks that it exists and (parquet) has the needed columns."""

    def __init__(self, path: str | Path, option: str = "--in"):
        self.path = Path(path).absolute()  # Ray workers may run elsewhere
        self.source = str(path)  # as the user wrote it, for messages
        self.format = file_format(path, option)
        if not self.path.is_file():
            raise LoragError(f"{option} {self.source}: " + ("file not found" if not self.path.exists() else "not a file"))
        try:
            with open(self.path, "rb"):
                pass
        except OSError as e:
            raise DataError(self.source, None, f"cannot read: {e.strerror}") from None
        self.columns: list[str] = []
        if self.format == "parquet":
            meta = self._parquet().metadata
            self.columns = [c for c in COLUMNS if c in meta.schema.names]
            for name in ("query", "document"):
                if name not in self.columns:
                    raise DataError(self.source, None, f"no column {name!r} (columns: {', '.join(meta.schema.names)})")

    def identity(self) -> dict:
        """What resuming checks: the same file, unchanged."""
        st = self.path.stat()
        return {"path": str(self.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def _parquet(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(self.source, None, f"not a readable parquet file: {e}") from None

    # -- counting and positioning -------------------------------------------------------------

    def count(self) -> int:
        """Rows in the file (a pass over the lines of a jsonl file, the footer of a parquet one)."""
        if self.format == "parquet":
            return self._parquet().metadata.num_rows
        with open(self.path, "rb") as fh:
            return sum(1 for line in fh if line.strip())

    def check_rows(self) -> int:
        """Read every row once before any work: a bad row stops here (file and number), and so does an
        id used twice (explicit ids and the row numbers of rows without one share a namespace).
        Returns the row count. Memory: one small hash per row."""
        import hashlib

        seen: dict[bytes, int] = {}
        rows = 0
        for chunk in self.read(self.start(), chunk_rows=4096):
            for row in chunk:
                rows += 1
                key = hashlib.blake2b(row.id.encode("utf-8"), digest_size=12).digest()
                first = seen.setdefault(key, row.number)
                if first != row.number:
                    raise DataError(self.source, row.number, f"id {row.id!r} is also the id of row {first} (ids must "
                                    "be unique; a row without an id takes its row number as id)")
        self.rows = rows
        return rows

    def start(self):
        return (0, 1) if self.format == "jsonl" else 0

    def locate(self, rows: int):
        """(cursor after the first ``rows`` rows, id of the last of them or None)."""
        if rows <= 0:
            return self.start(), None
        if self.format == "parquet":
            total = self._parquet().metadata.num_rows
            if rows > total:
                raise DataError(self.source, None, f"has {total} rows, fewer than the {rows} already graded")
            last = next(self.read(rows - 1, 1))[0]
            return rows, last.id
        seen, offset, line, last = 0, 0, 0, None
        with open(self.path, "rb") as fh:
            for raw in fh:
                line += 1
                offset += len(raw)
                if raw.strip():
                    seen += 1
                    if seen == rows:
                        last = raw
                        break
        if seen < rows:
            raise DataError(self.source, None, f"has {seen} rows, fewer than the {rows} already graded")
        return (offset, line + 1), self._parse_line(last, line).id

    def shards(self, cursor, rows_per_shard: int) -> list[tuple[object, int]]:
        """(cursor, rows) pieces covering everything from ``cursor`` on."""
        if self.format == "parquet":
            total = self._parquet().metadata.num_rows
            return [(s, min(rows_per_shard, total - s)) for s in range(cursor, total, rows_per_shard)]
        pieces, (offset, line) = [], cursor
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            start, n = (offset, line), 0
            for raw in fh:
                if raw.strip():
                    if n == rows_per_shard:
                        pieces.append((start, n))
                        start, n = (offset, line), 0
                    n += 1
                offset += len(raw)
                line += 1
        if n:
            pieces.append((start, n))
        return pieces

    # -- reading ------------------------------------------------------------------------------

    def read(self, cursor, limit: int | None = None, chunk_rows: int = 256) -> Iterator[list[Row]]:
        """Chunks of at most ``chunk_rows`` checked rows from ``cursor``, ``limit`` rows in all (None: to the end)."""
        reader = self._read_parquet if self.format == "parquet" else self._read_jsonl
        chunk: list[Row] = []
        for row in reader(cursor, limit):
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _parse_line(self, raw: bytes, line: int) -> Row:
        try:
            obj = json.loads(raw.decode("utf-8-sig" if line == 1 else "utf-8"))
        except UnicodeDecodeError:
            raise DataError(self.source, line, "not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise DataError(self.source, line, f"invalid JSON: {e.msg}") from None
        return parse_row(obj, self.source, line)

    def _read_jsonl(self, cursor, limit):
        offset, line = cursor
        done = 0
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            for raw in fh:
                if limit is not None and done >= limit:
                    return
                if raw.strip():
                    yield self._parse_line(raw, line)
                    done += 1
                line += 1

    def _read_parquet(self, start: int, limit):
        pf = self._parquet()
        meta = pf.metadata
        stop = meta.num_rows if limit is None else min(meta.num_rows, start + limit)
        first, groups = 0, []  # row groups overlapping [start, stop)
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if first + n > start and first < stop:
                groups.append((g, first))
            first += n
        if not groups:
            return
        index = groups[0][1]
        for batch in pf.iter_batches(batch_size=1024, row_groups=[g for g, _ in groups], columns=self.columns):
            for obj in batch.to_pylist():
                if index >= stop:
                    return
                if index >= start:
                    yield parse_row(obj, self.source, index + 1)
                index += 1


def writable_parent(path: Path, option: str) -> None:
    """Make ``path``'s folder and check a file can be created there (before any work)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise LoragError(f"{option} {path}: cannot write there ({e.strerror or e})") from None
    if path.is_dir():
        raise LoragError(f"{option} {path}: is a folder")
