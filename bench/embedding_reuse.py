"""The rerank task's pairs/s against the embedding grader's raw pairs/s on the same pairs, in one run
(python -m bench.embedding_reuse [--data DIR] [--k 20] [--queries N] [--rounds 2]).

Pairs: the BM25 top k of every evaluation query of a BEIR collection (default CISI). Rows, each timed
from an empty vector store (as in a new process), in rounds of ABBA order, in wall time and in this
process's CPU time (the figure a machine shared with other jobs does not change):
- ``raw``: ``EmbeddingGrader.grade(pairs)`` on the pairs in one call;
- ``rerank``: the rerank task (``Rerank.run``) with the runner's judge over an in-memory judgment cache,
  which adds building the pairs, cache look-ups and writes, ordering and ir-measures; the first stage
  (BM25 index and search) is built before and reported apart, as the report does;
- ``per_pair``: what the grader did before (every query and document encoded once per pair).
Calibration: the grader built with no stored fit (encodes the training pairs) and again with the
stored fit (encodes nothing). Results go to bench/results.json (key "embedding_reuse"), with the
machine: CPU model, torch CPU capability, cores, precision, load average."""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from bench.results_file import RESULTS, update

KEY = "embedding_reuse"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(precision: str) -> dict:
    return {"cpu": cpu_model(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": len(os.sched_getaffinity(0)), "threads": torch.get_num_threads(), "precision": precision,
            "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/shared/data/cisi")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None, help="first N evaluation queries (default: all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ["LORAG_CACHE_DIR"] = tempfile.mkdtemp(prefix="lorag-bench-cache-")  # no fit stored by earlier runs
    torch.set_num_threads(len(os.sched_getaffinity(0)))

    from lorag_harness.evaluation.cache import JudgmentCache
    from lorag_harness.backends.embedder import clear_vectors, load_embedder
    from lorag_harness.graders.embedding import EmbeddingGrader
    from lorag_harness.api.types import Pair
    from lorag_harness.evaluation.runner import load_dataset, make_judge
    from lorag_harness.tasks.rerank import Rerank

    load0 = os.getloadavg()
    ds = load_dataset(f"beir:{args.data}", {"seed": args.seed})
    task = Rerank(k=args.k, first_stage="bm25", n_queries=args.queries)
    cands, first_stage_s = task.candidates(ds)
    by_id = {d.doc_id: d for d in ds.corpus}
    qs = task.queries(ds)
    pairs = [Pair(q.text, by_id[d].text, ds.qrels[q.query_id].get(d, 0) > 0, pair_id=f"{q.query_id}:{d}")
             for q in qs for d in cands[q.query_id]]
    model = load_embedder(None)
    model.encode(["warm-up"])

    clear_vectors()
    start = time.perf_counter()
    grader = EmbeddingGrader(train_pairs=ds.train_pairs)
    calibrate_cold = time.perf_counter() - start
    clear_vectors()
    start = time.perf_counter()
    again = EmbeddingGrader(train_pairs=ds.train_pairs)
    calibrate_stored = time.perf_counter() - start
    assert again.calibration["cached"] and again.coef == grader.coef

    def raw():
        grader.grade(pairs)

    def rerank():
        cache = JudgmentCache(":memory:")
        try:
            task.run(ds, make_judge(grader, cache, 32))
        finally:
            cache.close()

    def per_pair():  # the grader before: queries and documents encoded once per pair
        q = model.encode([p.query for p in pairs], batch_size=64, normalize_embeddings=True)
        d = model.encode([p.document for p in pairs], batch_size=64, normalize_embeddings=True)
        np.sum(q * d, axis=1)

    rows = {"raw": raw, "rerank": rerank, "per_pair": per_pair}
    seconds = {n: [] for n in rows}
    cpu = {n: [] for n in rows}  # this process's CPU seconds: what other jobs on a shared machine do not change
    loads = []
    # ABBA order (raw, rerank, rerank, raw, ...): a load that drifts during the run weighs on both alike
    plan = [("raw", "rerank") if r % 2 == 0 else ("rerank", "raw") for r in range(args.rounds)] + [("per_pair",)]
    for r, names in enumerate(plan):
        for name in names:
            clear_vectors()
            start, start_cpu = time.perf_counter(), time.process_time()
            rows[name]()
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1} {name:8s} {len(pairs) / seconds[name][-1]:8.2f} pairs/s wall, "
                  f"{len(pairs) / cpu[name][-1]:8.2f} per CPU s  load {loads[-1]:.2f}", flush=True)
    rate = {n: len(pairs) * len(s) / sum(s) for n, s in seconds.items()}
    cpu_rate = {n: len(pairs) * len(s) / sum(s) for n, s in cpu.items()}
    per_round = [round(b / a, 3) for a, b in zip(seconds["rerank"], seconds["raw"])]
    out = {
        "dataset": f"beir:{args.data}", "first_stage": f"bm25@{args.k}", "queries": len(qs), "pairs": len(pairs),
        "distinct_queries": len({p.query for p in pairs}), "distinct_documents": len({p.document for p in pairs}),
        "rounds": args.rounds,
        "pairs_per_s": {n: round(v, 2) for n, v in rate.items()},
        "pairs_per_cpu_s": {n: round(v, 2) for n, v in cpu_rate.items()},
        "ratio_rerank_over_raw": round(rate["rerank"] / rate["raw"], 3), "ratio_per_round": per_round,
        "ratio_rerank_over_raw_cpu": round(cpu_rate["rerank"] / cpu_rate["raw"], 3),
        "speedup_over_per_pair": round(rate["raw"] / rate["per_pair"], 2),
        "first_stage_seconds": round(first_stage_s, 2),
        "calibration": {"training_pairs": len(ds.train_pairs), "fit_seconds": round(calibrate_cold, 2),
                        "stored_fit_seconds": round(calibrate_stored, 3), "auc": grader.calibration["auc"],
                        "auc_ci": [grader.calibration["auc_low"], grader.calibration["auc_high"]],
                        "slope": round(grader.coef, 3)},
        "machine": machine("fp32 (sentence-transformers, no autocast)"),
        "load_average": {"start": round(load0[0], 2), "during": [round(x, 2) for x in loads],
                         "end": round(os.getloadavg()[0], 2)},
        "target": "ratio_rerank_over_raw >= 0.9 (issue 22 item 6)",
    }
    print(f"rerank / raw = {out['ratio_rerank_over_raw']} wall (per round {per_round}), "
          f"{out['ratio_rerank_over_raw_cpu']} per CPU second; raw is {out['speedup_over_per_pair']}x "
          f"the per-pair encoding; calibration {calibrate_cold:.1f} s fitted, {calibrate_stored:.3f} s stored")
    update(KEY, out, path=args.results)


if __name__ == "__main__":
    main()
