"""Ranking bench on a BEIR collection (default: CISI): first stages alone, then graders reranking them.

    python bench/ranking.py                                   # bm25, dense; embedding@100, embedding@20, base@20
    python bench/ranking.py --reranker base:20 --reranker embedding:100 --queries 30

Each reranker runs through the harness (``rerank`` task) with a fresh in-memory judgment cache, so
its wall time includes all grading. Results go to bench/results.json under "ranking"."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from lorag_harness.retrieval import first_stage as retrieval, metrics as ranking
from lorag_harness.evaluation.runner import BenchConfig, load_dataset, run_bench
from bench.results_file import update_rows

COLUMNS = ("ndcg@10", "mrr@10", "map@100", "p@5")


def first_stage_row(name: str, ds, queries, k: int) -> dict:
    start = time.perf_counter()
    hits = retrieval.retrieve(name, ds, queries, k)
    seconds = time.perf_counter() - start
    rankings = {q: [d for d, _ in row] for q, row in hits.items()}
    qrels = {q.query_id: ds.qrels[q.query_id] for q in queries}
    values = ranking.per_query(ranking.standard_measures(recall_k=k), qrels, rankings)
    return {"system": f"{name} (first stage)", "k": k, "seconds": round(seconds, 2),
            **{m: round(float(np.mean(list(v.values()))), 4) for m, v in values.items()}}


def rerank_row(spec: str, k: int, first_stage: str, args, ds) -> dict:
    cfg = BenchConfig(graders=[spec], tasks=["rerank"], dataset=f"beir:{args.data}", dataset_options={"seed": args.seed},
                      task_options={"rerank": {"k": k, "first_stage": first_stage, "n_queries": args.queries}},
                      cache_path=args.cache or ":memory:", batch_size=args.batch_size, max_doc_tokens=args.max_doc_tokens)
    start = time.perf_counter()
    result = run_bench(cfg, dataset=ds)
    seconds = time.perf_counter() - start
    r = result.results["rerank"][spec]
    test = next(c for c in result.comparisons["rerank"] if "first stage" in c["b"])
    return {"system": f"{spec} reranking {first_stage}@{k}", "k": k, "queries": len(r.records), "seconds": round(seconds, 2),
            "grading_seconds": result.timings[spec]["rerank"], "pairs": len(r.records) * k,
            **{m: round(v.value, 4) for m, v in r.metrics.items() if not m.startswith("first_stage_")},
            **{m: round(v.value, 4) for m, v in r.metrics.items() if m.startswith("first_stage_")},
            "shared_cache": bool(args.cache),
            "vs_first_stage": {"mean_diff_ndcg@10": round(test["mean_diff"], 4), "p_value": round(test["p_value"], 4)}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/cisi")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--queries", type=int, default=None, help="first N evaluation queries (default: all)")
    ap.add_argument("--reranker", action="append", default=None, help="SPEC:K, e.g. base:20 (repeatable)")
    ap.add_argument("--first-stage", default="bm25")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-doc-tokens", type=int, default=160)
    ap.add_argument("--first-stages", default="bm25,dense", help="first stages measured alone (all queries)")
    ap.add_argument("--cache", default=None, help="judgment cache shared by the reranker rows (default: none; a row whose "
                                                   "judgments all come from it is marked reused)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()
    rerankers = args.reranker or ["embedding:100", "embedding:20", "base:20"]

    start = time.perf_counter()
    ds = load_dataset(f"beir:{args.data}", {"seed": args.seed})
    load_s = time.perf_counter() - start  # includes building the BM25 index for the training negatives
    queries = [q for q in ds.queries if any(g > 0 for g in ds.qrels.get(q.query_id, {}).values())]
    out = {"dataset": ds.name, "directory": args.data, "evaluation_queries": len(queries), "reranked_queries": args.queries or len(queries), "train_source": ds.train_source,
           "training_queries": len(ds.train_qrels), "load_seconds": round(load_s, 2), "seed": args.seed,
           "note": "wall times on a shared 2-core machine under heavy load from other jobs", "rows": []}
    for name in [s for s in args.first_stages.split(",") if s]:
        index = retrieval.first_stage(name, ds)
        row = first_stage_row(name, ds, queries, 100)
        row["index_seconds"] = round(index.seconds, 2)
        row["seconds"] = round(row["seconds"] + index.seconds, 2)  # building the index and searching
        save(args.results, out, row)
    for item in rerankers:
        spec, _, k = item.rpartition(":")
        save(args.results, out, rerank_row(spec, int(k), args.first_stage, args, ds))


def save(results: str, out: dict, row: dict) -> None:
    """Print the row and write everything so far (read-modify-write of our own key only); rows of
    earlier runs for other systems are kept."""
    out["rows"].append(row)
    print(json.dumps(row), flush=True)
    update_rows("ranking", out, results)


if __name__ == "__main__":
    main()
