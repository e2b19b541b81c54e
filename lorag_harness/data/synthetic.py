"""Training pairs from an unlabelled corpus: pseudo-queries with their passage as the positive,
negatives from a BM25 rank window (``negatives``), each pair with its provenance.

Pseudo-queries: ``title`` (a passage's title asks for its body), ``ict`` (inverse cloze: one
sentence taken out of the passage asks for the rest), ``generate`` (doc2query / InPars: a causal LM
writes a question about the passage; kept only when BM25 ranks the passage in the question's top k,
the round-trip filter of Promptagator). Every draw is seeded per document, so a resumed run writes
what an uninterrupted one would."""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lorag_harness.errors import DataError, LoragError
from . import negatives as neg

KINDS = ("title", "ict", "generate")


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    text: str

    @property
    def full(self) -> str:
        """The text a grader sees (as ``beir:`` builds it): title, newline, text."""
        return f"{self.title}\n{self.text}" if self.title and self.text else (self.text or self.title)


def read_passages(spec: str) -> list[Passage]:
    """``beir:DIR`` (its corpus.jsonl), ``jsonl:DIR`` (corpus.jsonl), ``jsonl:FILE`` (a pairs file: its
    documents), a ``.jsonl`` corpus (``_id``/``doc_id``/``id``, optional ``title``, ``text``) or a plain
    text file (one passage per line)."""
    kind, path = corpus_file(spec)
    if not path.is_file():
        raise DataError(str(path), None, "file not found" if not path.exists() else "not a file")
    if kind == "jsonl" and path.name != "corpus.jsonl":
        from .readers import read_pairs_jsonl

        docs = list(dict.fromkeys(p.document for p in read_pairs_jsonl(path)))
        return [Passage(hashlib.sha256(d.encode()).hexdigest()[:12], "", d) for d in docs]
    if path.suffix == ".jsonl" or kind:
        return _jsonl_passages(path)
    from .readers import text_lines

    out = [Passage(str(line), "", text.strip()) for line, text in text_lines(path) if text.strip()]
    if not out:
        raise DataError(str(path), None, "no passages (one per line)")
    return out


def corpus_file(spec: str) -> tuple[str, Path]:
    """(kind, the file a corpus spec reads): ``beir``/``jsonl`` or "" for a plain path."""
    kind, _, arg = spec.partition(":") if spec.split(":", 1)[0] in ("beir", "jsonl") else ("", "", spec)
    path = Path(arg)
    if kind in ("beir", "jsonl") and path.is_dir():
        path = path / "corpus.jsonl"
    return kind, path


def _jsonl_passages(path: Path) -> list[Passage]:
    from .beir import _objects

    out, seen = [], {}
    for line, obj in _objects(path):
        doc_id = next((obj[k] for k in ("_id", "doc_id", "id") if k in obj), None)
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
            raise DataError(str(path), line, "missing field '_id' (or 'doc_id')")
        doc_id = str(doc_id).strip()
        if doc_id in seen:
            raise DataError(str(path), line, f"duplicate id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = line
        title, text = obj.get("title") or "", obj.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise DataError(str(path), line, "fields 'title' and 'text' must be strings")
        if not title.strip() and not text.strip():
            raise DataError(str(path), line, "passage has neither 'title' nor 'text'")
        out.append(Passage(doc_id, title.strip(), text.strip()))
    if not out:
        raise DataError(str(path), None, "empty file")
    return out


TITLE_BODY_WORDS, ICT_SENTENCES, SENTENCE_WORDS = 8, 3, 4  # what a passage needs to give a title or ict query
NEEDS = {"title": f"--queries title needs a title and a body of {TITLE_BODY_WORDS} words or more",
         "ict": f"ict needs a text of {ICT_SENTENCES} sentences of {SENTENCE_WORDS} words or more",
         "generate": "generate needs a question that finds its passage in BM25's top --round-trip-k"}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= SENTENCE_WORDS]


def title_query(p: Passage, rng: random.Random):
    """(query, positive) or None: the title asks for the body."""
    if p.title and len(p.text.split()) >= TITLE_BODY_WORDS:
        return p.title, p.text
    return None


def ict_query(p: Passage, rng: random.Random):
    """(query, positive) or None: a random sentence asks for the passage without it (titled)."""
    sents = sentences(p.text)
    if len(sents) < ICT_SENTENCES:
        return None
    s = rng.choice(sents)
    rest = " ".join(x for x in sents if x is not s)
    return s, (f"{p.title}\n{rest}" if p.title else rest)


class QueryWriter:
    """doc2query with a causal LM (the base LM by default, or any HF model id or folder), prompted as
    InPars does: three document / relevant-query examples, then the passage, completed greedily up to
    the end of the line. Asked to "write a query" in a chat turn, the 135M base LM wrote summaries of
    the passage; the few-shot completion writes questions. ``prefetch`` writes a batch at once."""

    # InPars' "vanilla" prompt (Bonifacio et al., 2022): three MS MARCO examples
    EXAMPLES = (
        ("We don't know a lot about the effects of caffeine during pregnancy on you and your baby. So it's best "
         "to limit the amount you get each day.", "Is a little caffeine ok during pregnancy?"),
        ("Passiflora herbertiana. A rare passion fruit native to Australia. Fruits are green-skinned, white "
         "fleshed, with an unknown edible rating.", "What fruit is native to Australia?"),
        ("The Canadian Armed Forces. 1 The first large-scale Canadian peacekeeping mission started in Egypt on "
         "November 24, 1956.", "How large is the Canadian military?"),
    )
    SHOTS = "".join(f"Example {i}:\nDocument: {d}\nRelevant Query: {q}\n\n" for i, (d, q) in enumerate(EXAMPLES, 1))
    BATCH = 8
    PROMPT_VERSION = "inpars-v1"  # in a pairs file's .meta.json: a file the chat-prompt writer began is not resumed

    def __init__(self, model: str | None = None, max_new_tokens: int = 32, max_passage_tokens: int = 128):
        from lorag_harness.backends import lm

        self.name = model or "base"
        self.tok = lm.load_tokenizer(model, "--generator")  # left-padded: a batch ends where its prompts end
        self.model = lm.load_model(model, option="--generator")
        self.max_new_tokens, self.max_passage_tokens = max_new_tokens, max_passage_tokens
        self._written: dict[str, str] = {}

    def prompt(self, p: Passage) -> str:
        ids = self.tok(p.full, add_special_tokens=False)["input_ids"][: self.max_passage_tokens]
        passage = " ".join(self.tok.decode(ids).split())
        return f"{self.SHOTS}Example {len(self.EXAMPLES) + 1}:\nDocument: {passage}\nRelevant Query:"

    def prefetch(self, passages: list[Passage]) -> None:
        """Write the queries of ``passages`` in batches (left-padded greedy decoding)."""
        import torch

        from lorag_harness.backends import precision

        todo = [p for p in passages if p.doc_id not in self._written]
        # the prompt's forward is most of the work: the batch precision this CPU measured faster
        device = self.model.device.type
        compute = precision.autocast(precision.resolve("auto", device, warn=False), device)
        for i in range(0, len(todo), self.BATCH):
            chunk = todo[i:i + self.BATCH]
            enc = self.tok([self.prompt(p) for p in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad(), compute:
                out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self.tok.pad_token_id, stop_strings=["\n"],
                                          tokenizer=self.tok)  # a query is one line
            for p, row in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
                self._written[p.doc_id] = clean_query(self.tok.decode(row, skip_special_tokens=True))

    def __call__(self, p: Passage, seed: int) -> str:
        """The query of ``p`` (greedy: ``seed`` is not needed)."""
        if p.doc_id not in self._written:
            self.prefetch([p])
        return self._written.pop(p.doc_id)


def clean_query(text: str) -> str:
    """The first line of a completion, without quotes or a leading "Query:"."""
    text = text.strip().splitlines()[0].strip().strip('"').strip() if text.strip() else ""
    return re.sub(r"^(relevant query|query|search query)\s*:\s*", "", text, flags=re.I)


@dataclass
class PairOptions:
    kinds: tuple[str, ...] = ("title", "ict")
    negatives: int = 1
    window: tuple[int, int] = neg.WINDOW
    round_trip_k: int = 20
    seed: int = 13
    generator: str | None = None  # generate: HF model id or folder (None: the base LM)

    def check(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise LoragError(f"--queries must be one or more of {', '.join(KINDS)}, not {','.join(self.kinds) or '(none)'}")
        if self.negatives < 0 or self.round_trip_k < 1:
            raise LoragError("--negatives must be >= 0 and --round-trip-k >= 1")
        if not 0 <= self.window[0] < self.window[1]:
            raise LoragError(f"--window must be LO-HI with 0 <= LO < HI, not {self.window[0]}-{self.window[1]}")

    def as_dict(self) -> dict:
        return {"kinds": list(self.kinds), "negatives": self.negatives, "window": list(self.window),
                "round_trip_k": self.round_trip_k, "seed": self.seed, "generator": self.generator,
                **({"prompt": QueryWriter.PROMPT_VERSION} if "generate" in self.kinds else {})}


class PairMaker:
    """Pseudo-query pairs for one passage at a time, against a BM25 index of the whole corpus."""

    def __init__(self, passages: list[Passage], opts: PairOptions, writer=None):
        from lorag_harness.retrieval.first_stage import BM25

        opts.check()
        self.passages, self.opts, self.writer = passages, opts, writer
        self.ids = [p.doc_id for p in passages]
        self.bm25 = BM25([p.full for p in passages])
        self.window = neg.window_for(len(passages), opts.window)
        self.depth = max(self.window[1], opts.round_trip_k)

    def _ranked(self, query: str) -> list[str]:
        return [self.ids[i] for i, score in self.bm25.search([query], self.depth)[0] if score > 0]

    def pairs(self, p: Passage) -> list[dict]:
        """The rows for one passage: per pseudo-query, the positive then its negatives."""
        rows = []
        for kind in self.opts.kinds:
            rng = random.Random(f"{self.opts.seed}:{kind}:{p.doc_id}")
            if kind == "generate":
                if self.writer is None:
                    raise LoragError("--queries generate needs a query writer")
                query = self.writer(p, rng.randrange(2**31))
                if not query:
                    continue
                ranked = self._ranked(query)
                if p.doc_id not in ranked[: self.opts.round_trip_k]:  # round-trip filter
                    continue
                made, how = (query, p.full), f"generate:{self.writer.name}"
            else:
                made = (title_query if kind == "title" else ict_query)(p, rng)
                if made is None:
                    continue
                how, ranked = kind, None
            query, positive = made
            ranked = ranked if ranked is not None else self._ranked(query)
            qid = f"{kind}:{p.doc_id}"  # pair ids start with the query kind: query_kind()
            rows.append({"query": query, "document": positive, "label": True, "pair_id": f"{qid}:{p.doc_id}",
                         "doc_id": p.doc_id, "provenance": how})
            for d, drawn in neg.draw(ranked, {p.doc_id}, self.opts.negatives, rng, self.ids, self.window):
                other = self.passages[self._row(d)]
                rows.append({"query": query, "document": other.text if kind == "title" else other.full, "label": False,
                             "pair_id": f"{qid}:{d}", "doc_id": d, "provenance": drawn})
        return rows

    def _row(self, doc_id: str) -> int:
        if not hasattr(self, "_rows"):
            self._rows = {d: i for i, d in enumerate(self.ids)}
        return self._rows[doc_id]


def query_kind(pair_id: str) -> str:
    """The pseudo-query kind (title, ict, generate) of a pair ``PairMaker`` wrote."""
    return pair_id.split(":", 1)[0]


def done_documents(out: Path) -> tuple[set[str], int]:
    """Passages already written to ``out`` (a run killed midway), and the byte length to keep: up to the
    start of the last passage's rows, which is always written again (a kill or a full disk may have cut
    its block of rows short, even on a line boundary); a torn last line goes with it."""
    done, good, block = [], 0, 0  # block: where the rows of the last passage seen begin
    if not out.is_file():
        return set(), 0
    with open(out, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw)
            except ValueError:
                break
            doc = row.get("source_doc")
            if doc and (not done or done[-1] != doc):
                done.append(doc)
                block = good
            good += len(raw)
    return set(done[:-1]), block


def write_pairs(passages: list[Passage], out: str | Path, opts: PairOptions, *, resume: bool = True,
                writer=None, progress=None, only: set[str] | None = None) -> dict:
    """Write (or resume) ``out``: the rows of every passage (of those in ``only``), flushed per
    passage; negatives and the round-trip filter use the whole corpus. A ``.meta.json`` beside it
    holds the options, and a resumed run must have the same. Returns counts."""
    out = Path(out)
    chosen = [p for p in passages if only is None or p.doc_id in only]
    meta_path = out.with_name(out.name + ".meta.json")
    meta = {"options": opts.as_dict(), "documents": len(chosen),
            "corpus": hashlib.sha256("\x00".join(p.doc_id + "\x01" + p.full for p in passages).encode()).hexdigest()[:16]}
    done, good = set(), 0
    if resume and out.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            raise LoragError(f"--out {out}: exists without its {meta_path.name}; pass --overwrite to start again") from None
        if old != meta:
            raise LoragError(f"--out {out}: written with other options or another corpus ({meta_path.name}); "
                             "pass --overwrite to start again")
        done, good = done_documents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2))
    maker = PairMaker(passages, opts, writer)
    counts = {"documents": 0, "resumed": len(done), "positives": 0, "negatives": 0, "without_pairs": 0}
    mode = "r+b" if good or (resume and out.exists()) else "wb"
    with open(out, mode) as fh:
        fh.truncate(good)
        fh.seek(good)
        batch = getattr(writer, "BATCH", 1)
        for i, p in enumerate(chosen):
            if p.doc_id not in done:
                if writer is not None and hasattr(writer, "prefetch") and i % batch == 0:
                    writer.prefetch([q for q in chosen[i:i + batch] if q.doc_id not in done])
                rows = maker.pairs(p)
                for r in rows:
                    r["source_doc"] = p.doc_id
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
                fh.flush()
                counts["documents"] += 1
                counts["without_pairs"] += not rows
                counts["positives"] += sum(r["label"] for r in rows)
                counts["negatives"] += sum(not r["label"] for r in rows)
            if progress:
                progress(i + 1, len(chosen))
    return counts
