"""Ranking metrics shared by the ranking tasks (rerank, rag-p5, judge-agreement), computed by ir-measures.

A ranking is an ordered list of document ids per query. We give ir-measures scores that encode
that order exactly (``len - position``), so ties are broken by our rules, never by the
evaluator's (trec_eval breaks score ties by document id)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import ir_measures
from ir_measures import RR, AP, P, R, Judged, nDCG

Qrels = Mapping[str, Mapping[str, int]]  # query_id -> doc_id -> grade (graded; <= 0 is not relevant)
Rankings = Mapping[str, Sequence[str]]  # query_id -> doc ids, best first

# report name -> ir-measures measure; graded qrels are used as graded (nDCG gains = grades)
STANDARD = {"ndcg@10": nDCG @ 10, "mrr@10": RR @ 10, "map@100": AP @ 100, "p@5": P @ 5}


def recall_measure(k: int):
    return R @ k


def judged_measure(k: int = 10):
    return Judged @ k


def order(candidates: Sequence[str], judgments, first_stage_rank: Mapping[str, int] | None = None) -> list[str]:
    """Candidates ordered by a grader's judgments (one per candidate, same order).

    Judgments with a score come first, by score descending; then judgments without a score,
    relevant before not relevant before undecided. Ties (equal scores, or the same decision)
    keep the first-stage order (``first_stage_rank``, default: the order of ``candidates``)."""
    rank = first_stage_rank or {d: i for i, d in enumerate(candidates)}

    def key(item):
        doc, j = item
        if j.score is not None:
            return (0, -j.score, rank[doc])
        return (1, {True: 0, False: 1, None: 2}[j.relevant], rank[doc])

    return [d for d, _ in sorted(zip(candidates, judgments), key=key)]


def as_run(rankings: Rankings) -> dict[str, dict[str, float]]:
    """ir-measures run whose scores encode the ranking's order (no ties)."""
    run = {}
    for qid, docs in rankings.items():
        if len(set(docs)) != len(docs):
            raise ValueError(f"query {qid}: a document appears twice in the ranking")
        run[qid] = {d: float(len(docs) - i) for i, d in enumerate(docs)}
    return run


def per_query(measures: Mapping[str, object], qrels: Qrels, rankings: Rankings) -> dict[str, dict[str, float]]:
    """name -> query_id -> value, for every query of ``qrels`` (a query missing from the run scores 0)."""
    by_measure = {m: name for name, m in measures.items()}
    out = {name: {q: 0.0 for q in qrels} for name in measures}
    run = as_run({q: rankings.get(q, ()) for q in qrels})
    run = {q: docs for q, docs in run.items() if docs}
    qrels = {q: dict(d) for q, d in qrels.items()}
    if run:
        for m in ir_measures.iter_calc(list(measures.values()), qrels, run):
            out[by_measure[m.measure]][m.query_id] = float(m.value)
    return out


def standard_measures(recall_k: int | None = None, judged_k: int | None = 10) -> dict[str, object]:
    measures = dict(STANDARD)
    if recall_k:
        measures[f"recall@{recall_k}"] = recall_measure(recall_k)
    if judged_k:
        measures[f"judged@{judged_k}"] = judged_measure(judged_k)
    return measures


def write_trec_run(path: str | Path, rankings: Rankings, tag: str = "lorag") -> Path:
    """A TREC run file (``qid Q0 docid rank score tag``), scores encoding the order."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for qid in rankings:
            docs = rankings[qid]
            for i, d in enumerate(docs):
                fh.write(f"{qid} Q0 {d} {i + 1} {len(docs) - i} {tag}\n")
    return path


def write_trec_qrels(path: str | Path, qrels: Qrels) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for qid, docs in qrels.items():
            for d, rel in docs.items():
                fh.write(f"{qid} 0 {d} {rel}\n")
    return path
