"""Collections by name: ``irds:ID`` (ir_datasets, e.g. ``irds:beir/scifact/test``) and ``hf:ORG/NAME``
(BEIR-style datasets on the Hugging Face hub, e.g. ``hf:mteb/scifact`` or ``hf:BeIR/scifact``; a
local folder in the same layout works too).

Each is written once per load as a BEIR folder under the cache (``collections/``) and read by the
``beir:DIR`` reader, so the same checks, notes and query-disjoint training split apply; errors name
the written files, which stay there to be inspected."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable

from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl
from .beir import SPLITS, load_beir

OFFLINE = "download the collection elsewhere and use beir:DIR (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)"


def collections_dir() -> Path:
    from lorag_harness.paths import cache_dir

    return cache_dir() / "collections"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name).strip("_") or "collection"


def _text(value) -> str:
    return "" if value is None else str(value)


def write_beir(folder: Path, docs: Iterable[tuple], queries: Iterable[tuple], qrels: dict[str, Iterable[tuple]],
               source: dict) -> Path:
    """A BEIR folder from (id, title, text) docs, (id, text) queries and {split: (query, doc, score)}
    qrels; written beside ``folder`` and moved in place when complete."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "qrels").mkdir(parents=True)
    with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, title, text in docs:
            fh.write(json.dumps({"_id": str(doc_id), "title": _text(title), "text": _text(text)}, ensure_ascii=False) + "\n")
    with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in queries:
            fh.write(json.dumps({"_id": str(qid), "text": _text(text)}, ensure_ascii=False) + "\n")
    for split, rows in qrels.items():
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid, doc_id, score in rows:
                fh.write(f"{qid}\t{doc_id}\t{int(score)}\n")
    (tmp / "source.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_irds(arg, options):
    """``irds:ID``: an ir_datasets collection with docs, queries and qrels (``IR_DATASETS_HOME`` holds
    its files; a missing file is downloaded by ir_datasets where the network allows). The split is the
    id's last part (``…/test``); ``…/train`` of the same collection, if it exists, gives the training
    queries."""
    if not arg:
        raise LoragError("the irds dataset needs an ir_datasets id: --dataset irds:beir/scifact/test")
    try:
        import ir_datasets
    except ImportError:
        raise LoragError("irds:ID needs the ir_datasets package: pip install 'lorag-harness[irds]'") from None
    try:
        ds = ir_datasets.load(arg)
    except KeyError:
        raise LoragError(f"irds:{arg}: not an ir_datasets id (ids are listed at ir-datasets.com, e.g. "
                         "irds:beir/scifact/test)") from None
    missing = [part for part in ("docs", "queries", "qrels") if not getattr(ds, f"has_{part}")()]
    if missing:
        raise LoragError(f"irds:{arg}: the collection has no {' or '.join(missing)} (pick a split with qrels, "
                         f"e.g. irds:{arg}/test)")
    parts = arg.rstrip("/").rsplit("/", 1)
    base, split = (parts[0], parts[1]) if len(parts) == 2 and parts[1] in SPLITS else (None, "test")
    siblings = {split: ds}
    if base and split != "train":
        try:
            train = ir_datasets.load(f"{base}/train")
            if train.has_qrels() and train.has_queries():
                siblings["train"] = train
        except KeyError:
            pass
    home = str(ir_datasets.util.home_path())

    def docs():
        for d in ds.docs_iter():
            title = getattr(d, "title", "")
            text = getattr(d, "text", None)
            yield d.doc_id, title, text if text is not None else d.default_text()

    def queries():
        seen = set()
        for part in siblings.values():
            for q in part.queries_iter():
                if q.query_id not in seen:
                    seen.add(q.query_id)
                    text = getattr(q, "text", None)
                    yield q.query_id, text if text is not None else q.default_text()

    qrels = {s: ((r.query_id, r.doc_id, r.relevance) for r in part.qrels_iter()) for s, part in siblings.items()}
    folder = collections_dir() / "irds" / _slug(arg)
    try:
        write_beir(folder, docs(), queries(), qrels, {"irds": arg, "ir_datasets": ir_datasets.__version__,
                                                      "IR_DATASETS_HOME": home})
    except LoragError:
        raise
    except Exception as e:  # noqa: BLE001 - ir_datasets downloads on first use: any failure is "could not get it"
        raise LoragError(f"irds:{arg}: ir_datasets could not read or download its files under IR_DATASETS_HOME "
                         f"({home}): {type(e).__name__}: {_first_line(e)}; offline, {OFFLINE}") from e
    return _named(load_beir(str(folder), {**(options or {}), "split": split}), f"irds:{arg}")


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _named(ds, name: str):
    ds.name = name if name.endswith(f"/{ds.split}") else f"{name}/{ds.split}"
    return ds


def load_hf(arg, options):
    """``hf:ORG/NAME`` (or a local folder in that layout): a BEIR-style dataset with configs ``corpus``
    (``_id``, ``title``, ``text``) and ``queries`` (``_id``, ``text``), and qrels (``query-id``,
    ``corpus-id``, ``score``) in the ``default`` config's splits (the mteb layout) or in the
    ``ORG/NAME-qrels`` dataset (the BeIR layout). Option ``split`` (default test); the ``train`` split,
    if any, gives the training queries."""
    if not arg:
        raise LoragError("the hf dataset needs a dataset name: --dataset hf:mteb/scifact")
    try:
        import datasets
    except ImportError:
        raise LoragError("hf:ORG/NAME needs the datasets package: pip install 'lorag-harness[hf]'") from None
    split = (options or {}).get("split") or "test"
    local = Path(arg).expanduser().is_dir()
    try:
        corpus = datasets.load_dataset(arg, "corpus", split="corpus")
        queries = datasets.load_dataset(arg, "queries", split="queries")
        qrels = {split: _hf_qrels(datasets, arg, split, required=True)}
        if split != "train":
            train = _hf_qrels(datasets, arg, "train", required=False)
            if train is not None:
                qrels["train"] = train
    except LoragError:
        raise
    except Exception as e:  # noqa: BLE001 - the hub client's errors are many; each is reported in one line
        if local:
            raise LoragError(f"hf:{arg}: not a BEIR-style dataset folder ({type(e).__name__}: {_first_line(e)})") from e
        raise LoragError(f"hf:{arg}: could not load it from the Hugging Face hub or its local cache "
                         f"({type(e).__name__}: {_first_line(e)}); if the hub is unreachable from here, {OFFLINE}") from e
    for table, cols in ((corpus, ("_id", "text")), (queries, ("_id", "text"))):
        lacking = [c for c in cols if c not in table.column_names]
        if lacking:
            raise LoragError(f"hf:{arg}: a table lacks the column(s) {', '.join(lacking)} (has {', '.join(table.column_names)})")
    docs = ((r["_id"], r.get("title", ""), r["text"]) for r in corpus)
    qs = ((r["_id"], r["text"]) for r in queries)
    rows = {s: ((r["query-id"], r["corpus-id"], r["score"]) for r in t) for s, t in qrels.items()}
    folder = collections_dir() / "hf" / _slug(str(Path(arg).resolve()) if local else arg)
    write_beir(folder, docs, qs, rows, {"hf": arg, "datasets": datasets.__version__, "split": split})
    return _named(load_beir(str(folder), {**(options or {}), "split": split}), f"hf:{arg}")


def _hf_qrels(datasets, name: str, split: str, required: bool):
    """The qrels split from the ``default`` config, else from ``NAME-qrels``; None if absent and not required."""
    errors = []
    for repo, config in ((name, "default"), (f"{name}-qrels", None)):
        try:
            table = datasets.load_dataset(repo, config, split=split) if config else datasets.load_dataset(repo, split=split)
        except ValueError as e:  # an unknown config or split
            errors.append(_first_line(e))
            continue
        except Exception as e:  # noqa: BLE001 - NAME-qrels missing (local folder, or not on the hub)
            errors.append(f"{type(e).__name__}: {_first_line(e)}")
            continue
        lacking = [c for c in ("query-id", "corpus-id", "score") if c not in table.column_names]
        if lacking:
            raise LoragError(f"hf:{name}: the qrels ({repo}, split {split}) lack {', '.join(lacking)} "
                             f"(has {', '.join(table.column_names)})")
        return table
    if required:
        raise LoragError(f"hf:{name}: no qrels split {split!r} (in the default config or {name}-qrels: {'; '.join(errors)})")
    return None


@hookimpl
def register_datasets(register):
    register("irds", load_irds, "an ir_datasets collection by id, e.g. irds:beir/scifact/test (pip install 'lorag-harness[irds]')")
    register("hf", load_hf, "a BEIR-style Hugging Face dataset, e.g. hf:mteb/scifact (corpus, queries, qrels configs)")
