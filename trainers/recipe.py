"""Where a grader trainer's pairs come from (``--pairs-from``): ``synthetic`` (pseudo-queries from
the corpus, ``lorag pairs``, no judgment used), ``qrels`` (the dataset's training judgments, honest
negatives) or ``both``."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Dataset, Pair

err = Console(stderr=True)
SOURCES = ("synthetic", "qrels", "both")
# lorag train reranker's rows under --corpus/--pairs/--pairs-from, per loss (margin-mse: --teacher): what
# trains in about 15 minutes on 2 cores of an AVX2 CPU in float32 (the rate: docs/domain_adaptation.md)
RERANKER_ROWS = {"bce": 8192, "margin-mse": 4096, "lambda": 1536, "listnet": 1536}
# synthetic negatives under --teacher (lorag train reranker): BM25's top 30 (0-based, end excluded), as
# GPL mines them: the teacher's margin, not a label, says how relevant a top-ranked document is
TEACHER_WINDOW = (0, 30)


def read_pairs_file(path: str) -> list[Pair]:
    """A ``lorag pairs`` file (or any pairs JSON lines with query, document, label), provenance kept."""
    out = []
    from lorag_harness.data.readers import text_lines

    for line, text in text_lines(path):
        try:
            row = json.loads(text)
        except ValueError:
            raise DataError(path, line, "invalid JSON") from None
        if not isinstance(row, dict) or not all(k in row for k in ("query", "document", "label")):
            raise DataError(path, line, "expected an object with query, document, label")
        if not isinstance(row["label"], bool):
            raise DataError(path, line, f"label must be true or false, not {row['label']!r}")
        for field in ("query", "document"):  # null, a list or "" would train on their Python text
            if not isinstance(row[field], str) or not row[field].strip():
                raise DataError(path, line, f"field {field!r} must be a non-empty string, not {json.dumps(row[field])[:40]}")
        out.append(Pair(row["query"], row["document"], row["label"], pair_id=str(row.get("pair_id", "")),
                        provenance=str(row.get("provenance", "file"))))
    if not out:
        raise DataError(path, None, "no pairs")
    return out


def synthetic_pairs(corpus: str, kinds=("title", "ict"), negatives: int = 1, seed: int = 13,
                    window: tuple[int, int] | None = None) -> list[Pair]:
    """Pseudo-query pairs of every passage of ``corpus``, in memory (what ``lorag pairs`` writes;
    ``window``: the negatives' BM25 rank window, default ``lorag pairs --window``'s)."""
    from lorag_harness.data.synthetic import PairMaker, PairOptions, read_passages

    passages = read_passages(corpus)
    maker = PairMaker(passages, PairOptions(kinds=tuple(kinds), negatives=negatives, seed=seed,
                                            **({"window": window} if window else {})))
    return [Pair(r["query"], r["document"], r["label"], pair_id=r["pair_id"], provenance=r["provenance"])
            for p in passages for r in maker.pairs(p)]


def default_source(dataset: Dataset | None) -> str:
    return "both" if dataset is not None and dataset.train_pairs and dataset.corpus else "synthetic"


def recipe_pairs(source: str, *, corpus: str | None, pairs_file: str | None, dataset: Dataset | None,
                 seed: int = 13, window: tuple[int, int] | None = None) -> list[Pair]:
    """The training pairs of ``source``; synthetic ones from ``pairs_file`` or built from ``corpus``
    (negatives from the BM25 rank ``window``, default ``lorag pairs``'s)."""
    if source not in SOURCES:
        raise LoragError(f"--pairs-from must be one of {', '.join(SOURCES)}, not {source!r}")
    out: list[Pair] = []
    if source in ("synthetic", "both"):
        if pairs_file:
            if not Path(pairs_file).is_file():
                raise LoragError(f"--pairs {pairs_file}: file not found")
            out += read_pairs_file(pairs_file)
        elif corpus:
            out += synthetic_pairs(corpus, seed=seed, window=window)
        else:
            raise LoragError("--pairs-from synthetic needs --corpus SPEC (beir:DIR, jsonl:…, a passages file) or --pairs FILE")
    if source in ("qrels", "both"):
        if dataset is None or not dataset.train_pairs:
            raise LoragError(f"--pairs-from {source} needs a dataset with training judgments (-d beir:DIR)")
        out += list(dataset.train_pairs)
    return out


def recipe_dataset(o: dict, dataset_for, window: tuple[int, int] | None = None) -> tuple[Dataset, str]:
    """The dataset a trainer learns from under ``--corpus``/``--pairs``/``--pairs-from``: its
    ``train_pairs`` replaced by the recipe's pairs (synthetic negatives from ``window``). Returns (dataset, source)."""
    corpus, pairs_file, source = o.get("corpus"), o.get("pairs"), o.get("pairs_from")
    dataset = None
    spec = o.get("dataset")
    if spec is None and corpus and corpus.startswith("beir:"):
        spec = corpus
    if spec is not None and (source in ("qrels", "both") or source is None):
        dataset = dataset_for({**o, "dataset": spec})
    if corpus is None and spec and spec.startswith("beir:"):
        corpus = spec
    source = source or default_source(dataset)
    given = o.get("corpus")
    judged_by_corpus = dataset is not None and o.get("dataset") is None and source != "synthetic"
    if pairs_file and given and not judged_by_corpus:  # the file's pairs would be used, the corpus not
        raise LoragError(f"--corpus {given} and --pairs {pairs_file}: both give the synthetic pairs; pass one "
                         "(with --pairs-from both and no -d, a beir: --corpus gives the judgments and the file the pairs)")
    if pairs_file and source == "qrels":
        raise LoragError(f"--pairs {pairs_file} is not used with --pairs-from qrels; use --pairs-from both, or drop --pairs")
    pairs = recipe_pairs(source, corpus=corpus, pairs_file=pairs_file, dataset=dataset, seed=o.get("seed", 13), window=window)
    from collections import Counter

    counts = Counter(p.provenance or "unknown" for p in pairs)
    err.print(f"training pairs ({source}): " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), soft_wrap=True)
    name = (dataset.name if dataset else Path(str(corpus or pairs_file).split(":", 1)[-1]).name) + f" [{source}]"
    if pairs_file and source != "qrels":  # the manifest names the file the synthetic pairs came from
        name += f" + {Path(pairs_file).name}"
    ds = Dataset(name, pairs, [], corpus=dataset.corpus if dataset else [])
    return ds, source


def recipe_options(f):
    """--corpus, --pairs, --pairs-from: shared by the grader trainers."""
    opts = [
        click.option("--corpus", default=None,
                     help="Corpus for synthetic pairs: beir:DIR, jsonl:DIR|FILE, a .jsonl corpus or a passages file"),
        click.option("--pairs", default=None, help="Synthetic pairs written by `lorag pairs` (instead of building them)"),
        click.option("--pairs-from", type=click.Choice(["synthetic", "qrels", "both"]), default=None,
                     help="synthetic: pseudo-queries from the corpus (no judgment used); qrels: the dataset's training "
                          "judgments; both [default: both when the dataset has training judgments, else synthetic]"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f
