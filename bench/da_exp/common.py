"""Shared pieces of the domain-adaptation experiments on CISI (scratch; cached under /tmp/i23cache)."""
from __future__ import annotations

import json
import pickle
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CACHE = Path("/tmp/i23cache")
CACHE.mkdir(exist_ok=True)
DATA = "/work/shared/data/cisi"


def cached(name, fn):
    p = CACHE / name
    if p.exists():
        return pickle.loads(p.read_bytes())
    v = fn()
    p.write_bytes(pickle.dumps(v))
    return v


def load():
    from lorag_harness.data.beir import load_beir
    return load_beir(DATA, {"seed": 13})


def raw_corpus():
    return [json.loads(l) for l in open(f"{DATA}/corpus.jsonl")]


def bm25_candidates(ds, k=100):
    from lorag_harness.retrieval import first_stage as retrieval
    from tasks_shim import judged
    qs = judged(ds)
    def f():
        hits = retrieval.retrieve("bm25", ds, qs, k)
        return {q: [d for d, _ in row] for q, row in hits.items()}
    return qs, cached(f"bm25_{k}.pkl", f)


def evaluate(ds, qs, rankings):
    from lorag_harness.retrieval import metrics as ranking
    qrels = {q.query_id: ds.qrels[q.query_id] for q in qs}
    m = ranking.standard_measures(recall_k=None, judged_k=None)
    return ranking.per_query(m, qrels, rankings)


def summary(per_q, qs):
    return {k: round(float(np.mean([v[q.query_id] for q in qs])), 4) for k, v in per_q.items()}


def test(a, b, qs):
    from lorag_harness.evaluation.stats import paired_randomization
    r = paired_randomization([a["ndcg@10"][q.query_id] for q in qs], [b["ndcg@10"][q.query_id] for q in qs])
    return round(r["mean_diff"], 4), round(r["p_value"], 4)


def rerank_bi(model, ds, qs, cands):
    by_id = {d.doc_id: d.text for d in ds.corpus}
    docs = sorted({d for c in cands.values() for d in c})
    dv = model.encode([by_id[d] for d in docs], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    row = {d: i for i, d in enumerate(docs)}
    qv = model.encode([q.text for q in qs], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    out = {}
    for q, v in zip(qs, qv):
        c = cands[q.query_id]
        s = dv[[row[d] for d in c]] @ v
        order = np.argsort(-s, kind="stable")
        out[q.query_id] = [c[i] for i in order]
    return out


def split_sentences(text):
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
