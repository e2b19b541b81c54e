"""How much can the embedder gain on a BEIR collection from its OWN judgments? The reference for what a
grader trained without judgments might reach (issue 23): k-fold query-disjoint cross-validation of
``lorag train embedding``'s recipe (unchanged) on the judged queries of the other folds, each query
scored once, by the model that never saw it. nDCG@10 of BM25@100 reranked by cosine and fused with
BM25 (RRF), per query over all judged queries, with paired randomization tests against the untrained
embedder. Results: bench/results.json under "domain_adaptation_ceiling".

    python -m bench.judged_ceiling [--data DIR] [--folds 5] [--seed 13]"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from bench.domain_adaptation import (MEASURES, ROOT, cosine_rankings, judged_candidates, mean_row, ndcg_test, training,
                                     trained)
from bench.results_file import update
from lorag_harness.api.types import Dataset
from lorag_harness.backends.precision import machine
from lorag_harness.data.beir import load_beir, make_pairs
from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval.fusion import rrf
from lorag_harness.trainers.embedding_train import EmbeddingConfig, train_embedding


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/cisi")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--models", default=str(ROOT / "runs" / "judged_ceiling"))
    args = ap.parse_args(argv)
    if args.folds < 2:
        ap.error("--folds must be at least 2")
    from sentence_transformers import SentenceTransformer

    from lorag_harness.backends.embedder import resolve_embedder

    ds = load_beir(args.data, {"seed": args.seed, "train_fraction": 0.0})  # every judged query is evaluated
    queries, qrels, cands = judged_candidates(ds, ds.qrels)
    ids = [q.query_id for q in queries]
    order = ids[:]
    random.Random(args.seed).shuffle(order)
    folds = [order[k::args.folds] for k in range(args.folds)]
    by_id = {d.doc_id: d for d in ds.corpus}
    untrained, _ = cosine_rankings(SentenceTransformer(resolve_embedder(None), device="cpu"), ds, queries, cands)
    rerank, runs = {}, []
    for k, held_out in enumerate(folds):
        train_qrels = {q: ds.qrels[q] for q in ids if q not in set(held_out)}
        pairs = make_pairs(ds, train_qrels, by_id, "train:", seed=args.seed)
        folder = Path(args.models) / f"fold-{k}-of-{args.folds}"
        cfg = EmbeddingConfig(out=str(folder), seed=args.seed, force=True)
        start = time.perf_counter()
        manifest = trained(folder, cfg, pairs, lambda: train_embedding(
            cfg, Dataset(f"{ds.name} [fold {k}]", pairs, []),
            lambda s, t, l: print(f"  fold {k}: step {s}/{t} loss {l:.3f}", flush=True) if s % 10 == 0 else None))
        model = SentenceTransformer(str(folder), device="cpu")
        fold_queries = [q for q in queries if q.query_id in set(held_out)]
        fold_rerank, _ = cosine_rankings(model, ds, fold_queries, cands)
        rerank.update(fold_rerank)
        runs.append({"fold": k, "evaluated": len(held_out), "training_queries": len(train_qrels),
                     "wall_s": round(time.perf_counter() - start, 1), "training": training(manifest, pairs)})
        print(json.dumps(runs[-1]["training"] | {"fold": k}), flush=True)
    systems = {"BM25@100": cands, "untrained embedding reranking BM25@100": untrained,
               "untrained embedding + RRF with BM25@100": {q: rrf(r, cands[q]) for q, r in untrained.items()},
               "embedding trained on the other folds' judgments reranking BM25@100": rerank,
               "embedding trained on the other folds' judgments + RRF with BM25@100":
                   {q: rrf(r, cands[q]) for q, r in rerank.items()}}
    per_query = {s: ranking.per_query(MEASURES, qrels, r) for s, r in systems.items()}
    Path(args.models).mkdir(parents=True, exist_ok=True)
    (Path(args.models) / "per_query.json").write_text(json.dumps(per_query))
    plain = "untrained embedding reranking BM25@100"
    rows = []
    for s, values in per_query.items():
        row = mean_row(s, values, ids)
        against = [("vs_bm25", "BM25@100")]
        if "trained on" in s:
            against += [("vs_untrained", s.replace("embedding trained on the other folds' judgments", "untrained embedding")),
                        ("vs_untrained_rerank", plain)]
        row |= {key: ndcg_test(per_query, s, other, ids) for key, other in against if other != s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    update("domain_adaptation_ceiling", {
        "dataset": ds.name, "directory": args.data, "queries": len(ids), "folds": args.folds, "seed": args.seed,
        "recipe": {k: v for k, v in vars(EmbeddingConfig(out="")).items() if k != "out"},
        "machine": machine("fp32"), "rows": rows, "runs": runs}, precision="fp32")


if __name__ == "__main__":
    main()
