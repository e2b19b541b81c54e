"""Zero-shot query likelihood with the packaged decoder (UPR, Sachan et al. 2022): BM25's top K of a BEIR
collection reranked by the mean log-probability of the query's tokens after the passage and "Please
write a question based on this passage.", alone and fused (RRF, k=60) with BM25 and the untrained
embedder. No judgment and no training: a candidate signal for issue 23 (a grader for a corpus without
labels), measured on CISI's evaluation queries. Scores are kept in MODELS/query_likelihood_HASH.json,
reused only by a run of the same collection, seed, k, prompt and queries. Results: bench/results.json under "query_likelihood".

    python -m bench.query_likelihood [--data DIR] [--k 30]"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.domain_adaptation import MEASURES, ROOT, cosine_rankings, judged_candidates, mean_row, ndcg_test
from bench.results_file import update
from lorag_harness.backends import precision
from lorag_harness.backends.precision import machine
from lorag_harness.data.beir import load_beir
from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval.fusion import rrf

INSTRUCTION = "\nPlease write a question based on this passage.\nQuestion:"
DOC_TOKENS, QUERY_TOKENS, BATCH = 200, 120, 10


def query_log_likelihoods(queries, cands, text, k: int) -> dict[str, list[float]]:
    """query id -> mean log P(query token | passage, instruction, earlier query tokens) for its top k."""
    import torch

    from lorag_harness.backends.lm import load_model, load_tokenizer

    tok, model = load_tokenizer(None), load_model(None)
    used = precision.resolve("auto")

    def encode(doc: str, query: str):
        head = (tok("Passage: ", add_special_tokens=False)["input_ids"]
                + tok(doc, add_special_tokens=False)["input_ids"][:DOC_TOKENS]
                + tok(INSTRUCTION, add_special_tokens=False)["input_ids"])
        return head, tok(" " + query, add_special_tokens=False)["input_ids"][:QUERY_TOKENS]

    out, start = {}, time.perf_counter()
    with torch.inference_mode(), precision.autocast(used):
        for n, q in enumerate(queries):
            rows, scores = [encode(text[d], q.text) for d in cands[q.query_id][:k]], []
            for b in range(0, len(rows), BATCH):
                chunk = rows[b:b + BATCH]
                width = max(len(h) + len(x) for h, x in chunk)
                ids = torch.full((len(chunk), width), tok.pad_token_id)
                mask = torch.zeros_like(ids)
                for i, (h, x) in enumerate(chunk):  # right padding: positions need no shift
                    ids[i, :len(h) + len(x)] = torch.tensor(h + x)
                    mask[i, :len(h) + len(x)] = 1
                logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
                for i, (h, x) in enumerate(chunk):
                    at = torch.arange(len(h) - 1, len(h) + len(x) - 1)
                    scores.append(logp[i, at, torch.tensor(x)].mean().item())
            out[q.query_id] = scores
            if n % 10 == 0:
                print(f"query {n + 1}/{len(queries)}, {time.perf_counter() - start:.0f} s", flush=True)
    return out


def fuse(*orders: list[str], k: int = 60) -> list[str]:
    """Reciprocal rank fusion of any number of orders (ties: first seen)."""
    score: dict[str, float] = {}
    for order in orders:
        for r, d in enumerate(order):
            score[d] = score.get(d, 0.0) + 1.0 / (k + r + 1)
    return sorted(score, key=lambda d: -score[d])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/cisi")
    ap.add_argument("--k", type=int, default=30, help="BM25 candidates the decoder scores per query")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--models", default=str(ROOT / "runs" / "domain_adaptation"))
    ap.add_argument("--note", help="stored beside the results")
    args = ap.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from lorag_harness.backends.embedder import resolve_embedder

    ds = load_beir(args.data, {"seed": args.seed})
    queries, qrels, cands = judged_candidates(ds, ds.qrels)
    import hashlib

    what = json.dumps([str(Path(args.data).resolve()), args.seed, args.k, INSTRUCTION, DOC_TOKENS, QUERY_TOKENS,
                       [q.query_id for q in queries]])  # the scores are reused only for this very run
    saved = Path(args.models) / f"query_likelihood_{hashlib.sha256(what.encode()).hexdigest()[:12]}.json"
    seconds = None  # scoring time, when the scores are computed in this run
    if saved.is_file():
        scores = json.loads(saved.read_text())
    else:
        start = time.perf_counter()
        scores = query_log_likelihoods(queries, cands, {d.doc_id: d.text for d in ds.corpus}, args.k)
        seconds = round(time.perf_counter() - start, 1)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(scores))
    emb, _ = cosine_rankings(SentenceTransformer(resolve_embedder(None), device="cpu"), ds, queries, cands)

    def reranked(q: str, top: list[str]) -> list[str]:  # the reranked top k, then the rest of BM25's 100
        return top + [d for d in cands[q] if d not in set(top)]

    ql = {q: reranked(q, [cands[q][i] for i in np.argsort(-np.asarray(s), kind="stable")]) for q, s in scores.items()}
    systems = {"BM25@100": cands, "untrained embedding reranking BM25@100": emb,
               f"untrained embedding reranking BM25@{args.k}": {q: reranked(q, [d for d in emb[q] if d in set(cands[q][:args.k])]) for q in emb},
               f"query likelihood reranking BM25@{args.k}": ql,
               "untrained embedding + RRF with BM25@100": {q: rrf(r, cands[q]) for q, r in emb.items()},
               f"query likelihood + RRF with BM25@100": {q: rrf(r, cands[q]) for q, r in ql.items()},
               "query likelihood + untrained embedding (RRF)": {q: fuse(ql[q], emb[q]) for q in ql},
               "query likelihood + untrained embedding + BM25 (RRF)": {q: fuse(ql[q], emb[q], cands[q]) for q in ql}}
    per_query = {s: ranking.per_query(MEASURES, qrels, r) for s, r in systems.items()}
    ids = [q.query_id for q in queries]
    rows = []
    for s, values in per_query.items():
        row = mean_row(s, values, ids) | {
            key: ndcg_test(per_query, s, other, ids) for key, other in (
                ("vs_bm25", "BM25@100"), ("vs_untrained_rerank", "untrained embedding reranking BM25@100"),
                ("vs_untrained_rrf", "untrained embedding + RRF with BM25@100")) if other != s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    update("query_likelihood", {"dataset": ds.name, "evaluation_queries": len(ids), "k": args.k, "seed": args.seed,
                                "model": "packaged SmolLM2-135M-Instruct", "instruction": INSTRUCTION,
                                "scoring_seconds": seconds, **({"note": args.note} if args.note else {}),
                                "machine": machine(precision.resolve("auto")), "rows": rows},
           precision=precision.resolve("auto"))


if __name__ == "__main__":
    main()
