"""Checks every dataset passes: no duplicate or conflicting pairs, no document in both halves,
counts that make sense, both labels where a grader calibrates. Changes are reported in ``Dataset.notes``."""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterable, NamedTuple

from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Dataset, Pair

COUNT_OPTIONS = {"n_train": "--train-pairs", "n_eval": "--eval-pairs", "corpus_size": "--corpus-size",
                 "n_queries": "--rag-queries", "max_words": None}


class Row(NamedTuple):
    """A pair and where it was read: the file and line that error messages name."""

    pair: Pair
    source: str
    line: int | None = None

    @property
    def where(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


def text_key(text: str) -> str:
    """What makes two texts the same document: equal up to whitespace."""
    return " ".join(text.split())


def pair_key(p: Pair) -> tuple[str, str]:
    return text_key(p.query), text_key(p.document)


def check_counts(options: dict | None) -> None:
    """Refuse pair and corpus counts below 1 (and non-integers) with the option's name."""
    for key, value in (options or {}).items():
        if key in COUNT_OPTIONS and value is not None:
            flag = f" ({COUNT_OPTIONS[key]})" if COUNT_OPTIONS[key] else ""
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LoragError(f"dataset option {key}{flag} must be a whole number >= 1, not {value!r}")
    seed = (options or {}).get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise LoragError(f"dataset option seed must be a whole number, not {seed!r}")


def dedupe(rows: list[Row]) -> tuple[list[Row], int]:
    """Drop repeats of the same (query, document, label); a second label for the same
    query and document is a DataError naming both places. Returns the rows kept and the count dropped."""
    first: dict[tuple[str, str], Row] = {}
    kept = []
    for row in rows:
        key = pair_key(row.pair)
        seen = first.get(key)
        if seen is None:
            first[key] = row
            kept.append(row)
        elif seen.pair.label != row.pair.label:
            other = f"line {seen.line}" if seen.source == row.source and seen.line else seen.where
            raise DataError(row.source, row.line, f"label {str(row.pair.label).lower()} conflicts with {other} "
                            f"({str(seen.pair.label).lower()}) for the same query and document")
    return kept, len(rows) - len(kept)


def check_pair_ids(rows: Iterable[Row]) -> None:
    """Two different pairs may not share a pair_id (reference reasons are stored by id)."""
    seen: dict[str, Row] = {}
    for row in rows:
        other = seen.setdefault(row.pair.pair_id, row)
        if other is not row and pair_key(other.pair) != pair_key(row.pair):
            raise DataError(row.source, row.line, f"pair_id {row.pair.pair_id!r} is already used by {other.where}")


def split_by_document(pairs: list[Pair], seed: int) -> tuple[list[Pair], list[Pair]]:
    """Seeded halves in which every pair of a document lands on the same side (no document in both)."""
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[text_key(p.document)].append(p)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    train, evaluation = [], []
    for group in order:  # training gets at most half; evaluation is never empty
        (train if len(train) + len(group) <= len(pairs) // 2 else evaluation).extend(group)
    return train, evaluation


def shared_documents(a: Iterable[Pair], b: Iterable[Pair]) -> set[str]:
    return {text_key(p.document) for p in a} & {text_key(p.document) for p in b}


def drop_leaks(train: list[Pair], evaluation: list[Pair]) -> tuple[list[Pair], int]:
    """Training pairs whose document is also evaluated are removed (evaluation stays as given)."""
    shared = shared_documents(train, evaluation)
    kept = [p for p in train if text_key(p.document) not in shared]
    return kept, len(train) - len(kept)


def limit(pairs: list[Pair], n: int | None, seed: int) -> list[Pair]:
    """A seeded sample of ``n`` pairs, in their original order (all of them when ``n`` is None or larger)."""
    if n is None or n >= len(pairs):
        return pairs
    keep = set(random.Random(seed).sample(range(len(pairs)), n))
    return [p for i, p in enumerate(pairs) if i in keep]


def check_dataset(ds: Dataset, disjoint: str = "pairs") -> Dataset:
    """The checks every dataset passes, whichever plugin built it: evaluation pairs present, no
    conflicting labels, duplicates dropped, and no training pair that is also evaluated (with
    ``disjoint="documents"``: no training pair whose document is evaluated). Changes are noted."""
    if not isinstance(ds, Dataset):
        raise LoragError(f"a dataset loader returned {type(ds).__name__}, not a lorag_harness.Dataset")
    if disjoint not in ("pairs", "documents"):
        raise ValueError(f"disjoint must be 'pairs' or 'documents', not {disjoint!r}")
    for half in ("train_pairs", "eval_pairs"):
        bad = next((p for p in getattr(ds, half) if not isinstance(p, Pair)), None)
        if bad is not None:
            raise LoragError(f"dataset {ds.name!r}: {half} holds a {type(bad).__name__}, not a lorag_harness.Pair")
    if not ds.eval_pairs:
        raise LoragError(f"dataset {ds.name!r} has no evaluation pairs")
    rows = [Row(p, f"{ds.name} eval") for p in ds.eval_pairs] + [Row(p, f"{ds.name} train") for p in ds.train_pairs]
    dedupe(rows)  # conflicting labels anywhere: an error
    evaluation, dropped_eval = dedupe(rows[: len(ds.eval_pairs)])
    train, dropped_train = dedupe(rows[len(ds.eval_pairs):])
    ds.eval_pairs, ds.train_pairs = [r.pair for r in evaluation], [r.pair for r in train]
    if dropped_eval or dropped_train:
        ds.notes.append(f"{ds.name}: {dropped_eval + dropped_train} duplicate pairs removed")
    if disjoint == "documents":
        ds.train_pairs, leaked = drop_leaks(ds.train_pairs, ds.eval_pairs)
        what = "their documents are also in the evaluation pairs"
    else:
        evaluated = {pair_key(p) for p in ds.eval_pairs}
        kept = [p for p in ds.train_pairs if pair_key(p) not in evaluated]
        ds.train_pairs, leaked = kept, len(ds.train_pairs) - len(kept)
        what = "they are also evaluation pairs"
    if leaked:
        ds.notes.append(f"{ds.name}: {leaked} training pairs removed: {what}")
    return ds


def label_counts(pairs: Iterable[Pair]) -> tuple[int, int]:
    pairs = list(pairs)
    positive = sum(1 for p in pairs if p.label)
    return positive, len(pairs) - positive


def require_both_labels(pairs, dataset: str | None, who: str, fix: str = "") -> None:
    """LoragError unless ``pairs`` hold at least one relevant and one not-relevant pair."""
    positive, negative = label_counts(pairs)
    if positive and negative:
        return
    have = f"{positive} relevant and {negative} not relevant" if positive or negative else "none"
    where = f"dataset {dataset!r} has" if dataset else "the training pairs given have"
    raise LoragError(f"{who} needs training pairs of both labels, and {where} {have}" + (f": {fix}" if fix else ""))
