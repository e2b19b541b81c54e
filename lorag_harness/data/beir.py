"""The BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{train,dev,test}.tsv``.

``beir:DIR`` evaluates on the judged queries of one qrels split (option ``split``, default test).
Training pairs come from ``qrels/train.tsv`` when it exists (and is not the evaluation split),
otherwise from a seeded, query-disjoint share of the evaluation split's queries (``train_fraction``):
no query is in both. Pairs: every judged-relevant document of a query, and up to as many negatives:
the documents judged not relevant (grade <= 0), then, for training pairs, unjudged documents from a
BM25 rank window (never the top-ranked unjudged ones: often relevant), for evaluation pairs random
unjudged documents only where the qrels judge no negative (said in the notes). See ``negatives``."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Dataset, Doc, Pair, Query, pairs_hash

SPLITS = ("train", "dev", "test")


@dataclass
class BeirDataset(Dataset):
    """A BEIR collection: ``qrels`` holds the evaluation queries' judgments only."""

    split: str = "test"
    train_qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    train_source: str = ""  # "qrels/train.tsv" or "query-disjoint share of qrels/test.tsv"
    directory: str = ""

    def fingerprint(self) -> str:
        from lorag_harness.retrieval.first_stage import corpus_key

        extra = json.dumps([self.split, sorted((q, sorted(d.items())) for q, d in self.qrels.items()),
                            corpus_key(self.corpus), [(q.query_id, q.text) for q in self.queries]])
        return pairs_hash(self.train_pairs + self.eval_pairs + [Pair(extra, "", False)])


def _lines(path: Path):
    """(line number, text) of the non-blank lines; decoding errors name the line."""
    if not path.is_file():
        raise DataError(str(path), None, "file not found")
    with open(path, "rb") as fh:  # decoded line by line, so that an error names its line
        for line, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(str(path), line, "not UTF-8 text") from None
            if text.strip():
                yield line, text


def _objects(path: Path):
    for line, text in _lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(str(path), line, f"invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(str(path), line, "expected a JSON object")
        yield line, obj


def _id(obj: dict, path: Path, line: int) -> str:
    value = obj.get("_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(str(path), line, "missing field '_id' (a string)")
    return str(value).strip()


def _text(obj: dict, name: str, path: Path, line: int) -> str:
    value = obj.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(str(path), line, f"field {name!r} must be a string, not {type(value).__name__}")
    return value.strip()


def _unique_id(obj: dict, path: Path, line: int, seen: dict) -> str:
    """The row's ``_id``, refused when an earlier line of the file had it."""
    value = _id(obj, path, line)
    if value in seen:
        raise DataError(str(path), line, f"duplicate _id {value!r} (first on line {seen[value]})")
    seen[value] = line
    return value


def read_corpus(path: str | Path, empty: dict[str, int] | None = None) -> list[Doc]:
    """Documents, read line by line; the text a grader sees is the title, a newline, the text.

    A document with neither title nor text is an error, or, given ``empty``, skipped and recorded
    there (doc id -> line): real collections hold a few."""
    path, docs, seen = Path(path), [], {}
    for line, obj in _objects(path):
        doc_id = _unique_id(obj, path, line, seen)
        title, text = _text(obj, "title", path, line), _text(obj, "text", path, line)
        if not text and not title:
            if empty is None:
                raise DataError(str(path), line, "document has neither 'title' nor 'text'")
            empty[doc_id] = line
            continue
        docs.append(Doc(doc_id, f"{title}\n{text}" if title and text else (text or title), ""))
    if not docs:
        raise DataError(str(path), None, "no document has a title or text" if empty else "empty file")
    return docs


def read_queries(path: str | Path) -> list[Query]:
    path, queries, seen = Path(path), [], {}
    for line, obj in _objects(path):
        qid = _unique_id(obj, path, line, seen)
        text = _text(obj, "text", path, line)
        if not text:
            raise DataError(str(path), line, "field 'text' is empty" if "text" in obj else "missing field 'text'")
        queries.append(Query(qid, text))
    if not queries:
        raise DataError(str(path), None, "empty file")
    return queries


def read_qrels(path: str | Path, doc_ids: set[str], query_ids: set[str]) -> dict[str, dict[str, int]]:
    """``query-id<TAB>corpus-id<TAB>score`` after a header line; graded integer scores."""
    path, qrels = Path(path), {}
    header = True
    for line, text in _lines(path):
        parts = [p.strip() for p in text.rstrip("\r\n").split("\t")]
        if len(parts) != 3:
            raise DataError(str(path), line, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(parts)}")
        if header:
            header = False
            if _int(parts[2]) is not None:
                raise DataError(str(path), line, "missing header line 'query-id<TAB>corpus-id<TAB>score'")
            continue
        qid, did, score = parts[0], parts[1], _int(parts[2])
        if score is None:
            raise DataError(str(path), line, f"score {parts[2]!r} is not an integer")
        if qid not in query_ids:
            raise DataError(str(path), line, f"query {qid!r} is not in queries.jsonl")
        if did not in doc_ids:
            raise DataError(str(path), line, f"document {did!r} is not in corpus.jsonl")
        old = qrels.setdefault(qid, {}).get(did)
        if old is not None and old != score:
            raise DataError(str(path), line, f"conflicting scores for query {qid!r}, document {did!r}: {old} and {score}")
        qrels[qid][did] = score
    if not qrels:
        raise DataError(str(path), None, "no judgments")
    return qrels


def _without(qrels: dict, empty: dict, dropped: list) -> dict:
    """Qrels without the skipped empty documents (their count appended to ``dropped``) and without
    the queries left with no judgment."""
    if not empty:
        return qrels
    out, n = {}, 0
    for q, docs in qrels.items():
        kept = {d: g for d, g in docs.items() if d not in empty}
        n += len(docs) - len(kept)
        if kept:
            out[q] = kept
    dropped.append(n)
    return out


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def query_disjoint_split(qrels: dict, fraction: float, seed: int) -> tuple[dict, dict]:
    """(training qrels, evaluation qrels): a seeded share of the queries, no query in both."""
    if not 0 <= fraction < 1:
        raise LoragError(f"train_fraction must be in [0, 1), not {fraction}")
    queries = sorted(qrels)
    rng = random.Random(seed)
    chosen = set(rng.sample(queries, int(round(fraction * len(queries))))) if fraction else set()
    return ({q: qrels[q] for q in queries if q in chosen}, {q: qrels[q] for q in queries if q not in chosen})


def make_pairs(ds: Dataset, qrels: dict, by_id: dict[str, Doc], prefix: str, *, evaluation: bool = False,
               seed: int = 13) -> list[Pair]:
    """Every judged-relevant document of a query, and up to as many negatives, each pair with its
    provenance. Negatives are the documents judged not relevant first. Training pairs then take
    unjudged documents from a BM25 rank window (``negatives.WINDOW``, never the top-ranked ones);
    evaluation pairs take judged ones only, or, where these qrels judge no document not relevant,
    random unjudged documents."""
    from lorag_harness.retrieval.first_stage import retrieve
    from . import negatives as neg

    queries = [q for q in ds.queries if q.query_id in qrels]
    rng = random.Random(f"{seed}:{prefix}")
    all_ids = [d.doc_id for d in ds.corpus]
    # judged negatives that can pair with a positive of their query (a query judged only not relevant has none)
    no_judged_negatives = not any(g <= 0 for d in qrels.values() if any(x > 0 for x in d.values()) for g in d.values())
    window = neg.window_for(len(all_ids))
    hits = retrieve("bm25", ds, queries, window[1]) if queries and not evaluation else {}
    pairs = []
    for q in queries:
        judged = qrels[q.query_id]
        positives = [d for d, g in judged.items() if g > 0]
        drawn = [(d, neg.JUDGED) for d, g in judged.items() if g <= 0][: len(positives)]
        missing = len(positives) - len(drawn)
        if not evaluation:
            drawn += neg.draw([d for d, _ in hits.get(q.query_id, [])], set(judged), missing, rng, all_ids, window)
        elif no_judged_negatives:
            drawn += neg.draw([], set(judged), missing, rng, all_ids, (0, 0))
        for d in positives:
            pairs.append(Pair(q.text, by_id[d].text, True, pair_id=f"{prefix}{q.query_id}:{d}", provenance="judged-relevant"))
        for d, how in drawn:
            pairs.append(Pair(q.text, by_id[d].text, False, pair_id=f"{prefix}{q.query_id}:{d}", provenance=how))
    return pairs


def pairs_note(pairs: list[Pair], what: str) -> str:
    """One line: how many pairs of each provenance."""
    from collections import Counter

    counts = Counter(p.provenance or "unknown" for p in pairs)
    return f"{what}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def load_beir(arg, options):
    """A BEIR-layout folder: beir:DIR (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv); option split."""
    if not arg:
        raise LoragError("the beir dataset needs a folder: --dataset beir:DIR")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    root = Path(arg)
    if not root.is_dir():
        raise DataError(str(root), None, "not a folder (expected corpus.jsonl, queries.jsonl, qrels/)")
    split = options.get("split") or "test"
    if split not in SPLITS:
        raise LoragError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise DataError(str(qrels_file), None, f"no such qrels split (found: {', '.join(have) or 'none'})")
    seed = int(options.get("seed", 13))
    fraction = float(options.get("train_fraction", 0.2))

    empty: dict[str, int] = {}
    corpus = read_corpus(root / "corpus.jsonl", empty)
    queries = read_queries(root / "queries.jsonl")
    doc_ids, query_ids = {d.doc_id for d in corpus}, {q.query_id for q in queries}
    dropped: list[int] = []
    qrels = _without(read_qrels(qrels_file, doc_ids | set(empty), query_ids), empty, dropped)
    train_file = root / "qrels" / "train.tsv"
    if split != "train" and train_file.is_file():
        train_qrels = _without(read_qrels(train_file, doc_ids | set(empty), query_ids), empty, dropped)
        train_qrels = {q: d for q, d in train_qrels.items() if q not in qrels}  # never a query in both
        source = "qrels/train.tsv"
    else:
        train_qrels, qrels = query_disjoint_split(qrels, fraction, seed)
        source = f"query-disjoint share ({fraction:g}) of qrels/{split}.tsv"
    if not qrels:
        raise LoragError(f"{qrels_file}: no evaluation queries left after taking the training queries")

    ds = BeirDataset(f"{root.name}/{split}", [], [], corpus=corpus, queries=queries, qrels=qrels, split=split,
                     train_qrels=train_qrels, train_source=source, directory=str(root))
    if empty:
        lines = sorted(empty.values())
        ds.notes.append(f"{root / 'corpus.jsonl'}: {len(empty)} documents with neither title nor text skipped (line"
                        f"{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:5]))}{', …' if len(lines) > 5 else ''})"
                        + (f"; their {sum(dropped)} judgments left out" if sum(dropped) else ""))
    by_id = {d.doc_id: d for d in corpus}
    rng = random.Random(seed)
    train = make_pairs(ds, train_qrels, by_id, "train:", seed=seed)
    evals = make_pairs(ds, qrels, by_id, "eval:", evaluation=True, seed=seed)
    rng.shuffle(train)
    rng.shuffle(evals)
    n_train, n_eval = options.get("n_train"), options.get("n_eval")
    ds.train_pairs = train[: int(n_train)] if n_train else train
    ds.eval_pairs = evals[: int(n_eval)] if n_eval else evals
    if ds.eval_pairs and not any(p.provenance == "judged-not-relevant" for p in ds.eval_pairs):
        ds.notes.append(f"{root.name}: the qrels judge no document not relevant for a query with a relevant one; the "
                        "evaluation pairs' negatives are random unjudged documents")
    ds.notes.append(pairs_note(ds.eval_pairs, "evaluation pairs"))
    if ds.train_pairs:
        ds.notes.append(pairs_note(ds.train_pairs, "training pairs"))
    return ds


from lorag_harness.hookspecs import hookimpl  # noqa: E402


@hookimpl
def register_datasets(register):
    register("beir", load_beir)
