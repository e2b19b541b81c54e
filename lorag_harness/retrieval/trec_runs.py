"""TREC run files in and out.

``--first-stage run:FILE`` reads a run from any retriever (Pyserini/Anserini, Elasticsearch, a
vector DB): six columns ``query Q0 doc rank score tag``. Each query's documents are ordered by score
descending, ties by the rank column, then by file order. ``--save-runs DIR`` writes the rerank
task's first-stage run, one run per grader and the evaluated qrels, for trec_eval, ranx or
ir-measures."""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from lorag_harness.errors import LoragError

PREFIX = "run:"
SHOWN = 5  # line numbers or ids listed in a note


@dataclass
class TrecRun:
    path: str
    rankings: dict[str, list[str]]  # query -> doc ids, best first
    lines: dict[str, list[int]]  # query -> the file line of each doc of ``rankings``
    ties: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # query -> (line, tied-with line)
    seconds: float = 0.0


def is_run(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def read_run(path: str | Path, option: str = "--first-stage") -> TrecRun:
    """Parse a TREC run file; a malformed line is one error naming ``file:line``."""
    start = time.perf_counter()
    where = str(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise LoragError(f"{option} run:{where}: no such file")
    if p.is_dir():
        raise LoragError(f"{option} run:{where}: is a folder; pass a TREC run file")
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    try:
        fh = open(p, "rb")
    except OSError as e:
        raise LoragError(f"{option} run:{where}: {e.strerror or e}") from None
    with fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise LoragError(f"{where}:{n}: not UTF-8 text") from None
            if not line.strip():
                continue
            cols = line.split()
            if len(cols) != 6:
                raise LoragError(f"{where}:{n}: expected 6 columns (query Q0 doc rank score tag), found {len(cols)}")
            qid, _, doc, rank, score, _ = cols
            try:
                rank_i = int(rank)
            except ValueError:
                raise LoragError(f"{where}:{n}: rank {rank!r} is not an integer") from None
            try:
                score_f = float(score)
            except ValueError:
                raise LoragError(f"{where}:{n}: score {score!r} is not a number") from None
            if not math.isfinite(score_f):
                raise LoragError(f"{where}:{n}: score {score!r} is not a finite number")
            if (qid, doc) in seen:
                raise LoragError(f"{where}:{n}: document {doc} appears twice for query {qid} (first at line {seen[qid, doc]})")
            seen[qid, doc] = n
            rows.setdefault(qid, []).append((-score_f, rank_i, n, doc))
    if not rows:
        raise LoragError(f"{option} run:{where}: the file has no run lines")
    rankings, lines, ties = {}, {}, {}
    for qid, found in rows.items():
        found.sort()
        rankings[qid] = [d for *_, d in found]
        lines[qid] = [n for _, _, n, _ in found]
        tied = [(found[i][2], found[i - 1][2]) for i in range(1, len(found)) if found[i][0] == found[i - 1][0]]
        if tied:
            ties[qid] = tied
    return TrecRun(where, rankings, lines, ties, time.perf_counter() - start)


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:SHOWN])
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{', …' if len(numbers) > SHOWN else ''}"


def candidates(run: TrecRun, dataset, queries, k: int) -> tuple[dict[str, list[str]], list[str]]:
    """(query id -> the run's top ``k`` known documents, notes) for the evaluated ``queries``.

    Documents not in the corpus are dropped, queries the run lacks get no candidates (they score 0),
    and score ties within the top ``k`` are listed; each note names the lines. A run with no
    evaluated query or no known document is an error (a run of another collection)."""
    corpus = {d.doc_id for d in dataset.corpus}
    known_q = {q.query_id for q in dataset.queries} if dataset.queries else None
    wanted = [q.query_id for q in queries]
    notes, out = [], {}
    unknown_docs = sorted(n for q, docs in run.rankings.items() for d, n in zip(docs, run.lines[q]) if d not in corpus)
    total = sum(len(d) for d in run.rankings.values())
    if unknown_docs and len(unknown_docs) == total:
        raise LoragError(f"{run.path}: none of its documents is in the corpus of {dataset.name} "
                         f"(e.g. {run.rankings[next(iter(run.rankings))][0]!r} at line 1): a run of another collection?")
    if not any(q in run.rankings for q in wanted):
        raise LoragError(f"{run.path}: none of the {len(wanted)} evaluated queries of {dataset.name} is in the run "
                         f"(the run's first query id: {next(iter(run.rankings))!r})")
    if unknown_docs:
        notes.append(f"{run.path}: {len(unknown_docs)} of {total} lines name documents not in the corpus, dropped "
                     f"({_lines(unknown_docs)})")
    if known_q is not None:
        stray = sorted(min(run.lines[q]) for q in run.rankings if q not in known_q)
        if stray:
            notes.append(f"{run.path}: {len(stray)} queries not in the dataset, ignored (first at {_lines(stray)})")
    missing = [q for q in wanted if q not in run.rankings]
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (", …" if len(missing) > SHOWN else "")
        notes.append(f"{run.path}: no line for {len(missing)} of {len(wanted)} evaluated queries ({shown}): "
                     f"they score 0, first stage and reranked (trec_eval -c's convention)")
    tie_lines = []
    for q in wanted:
        kept = [(d, n) for d, n in zip(run.rankings.get(q, ()), run.lines.get(q, ())) if d in corpus][:k]
        out[q] = [d for d, _ in kept]
        top = {n for _, n in kept}
        tie_lines += [f"{b} and {a}" for a, b in run.ties.get(q, ()) if a in top and b in top]
    if tie_lines:
        notes.append(f"{run.path}: {len(tie_lines)} score ties in the evaluated top {k} (lines {'; '.join(tie_lines[:SHOWN])}"
                     f"{'; …' if len(tie_lines) > SHOWN else ''}): ordered by the rank column, then file order "
                     f"(trec_eval would order them by document id)")
    return out, notes


def check_folder(folder: str | Path, option: str = "--save-runs") -> Path:
    """Create ``folder`` and prove a file can be written there, before any work."""
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise LoragError(f"{option} {folder}: is a file; pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".lorag-probe.tmp"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise LoragError(f"{option} {folder}: cannot write there: {e.strerror or e}") from None
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "grader"


def write_run(path: Path, rankings: dict[str, list[str]], tag: str) -> Path:
    """``qid Q0 doc rank score tag``, scores encoding the order (``len - position``: no ties), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for qid, docs in rankings.items():
            for i, d in enumerate(docs):
                fh.write(f"{qid} Q0 {d} {i + 1} {len(docs) - i} {tag}\n")
    os.replace(tmp, path)
    return path


def save_runs(result, folder: str | Path, task: str = "rerank") -> dict:
    """Write ``first-stage.trec``, one ``<grader>.trec`` per grader, ``qrels.txt`` (the evaluated
    queries' qrels) and ``runs.json`` (which file is which) from the rerank task's results."""
    by_grader = result.results.get(task) or {}
    if not by_grader:
        raise LoragError(f"--save-runs: the results hold no {task} task (run with -t {task})")
    folder = check_folder(folder)
    first = next(iter(by_grader.values()))
    if not first.records or "ranking" not in first.records[0]:
        raise LoragError(f"--save-runs: these {task} results do not store full rankings (written by an older version): "
                         "run the bench again")
    rec0 = first.records[0]
    stage = str(rec0.get("first_stage", "first-stage"))
    tag = _slug(stage.removeprefix(PREFIX).rsplit("/", 1)[-1])
    written = {"first_stage": {"name": stage, "k": rec0.get("k"), "file": "first-stage.trec"}, "graders": {},
               "qrels": "qrels.txt"}
    write_run(folder / "first-stage.trec", {r["query_id"]: r["first_stage_ranking"] for r in first.records}, tag)
    tmp = folder / "qrels.txt.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in first.records:
            for d, grade in r["qrels"].items():
                fh.write(f"{r['query_id']} 0 {d} {grade}\n")
    os.replace(tmp, folder / "qrels.txt")
    used = {"first-stage", "qrels", "runs"}
    for grader, res in by_grader.items():
        name = _slug(grader)
        while name in used:
            name += "_"
        used.add(name)
        write_run(folder / f"{name}.trec", {r["query_id"]: r["ranking"] for r in res.records}, name)
        written["graders"][grader] = f"{name}.trec"
    (folder / "runs.json").write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    return written
