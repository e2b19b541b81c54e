"""Cross-encoder training settings on Reuters R8 against the embedding grader, in one run:
the same training pairs as `lorag demo`, the same 400 evaluation pairs for every model.

    nice -n 10 .venv/bin/python bench/rerankers.py [--eval-pairs 400] [--out-dir runs/rerankers]

Variants: the demo's former setting (80 steps, lr 1e-4), the quick profile (2 epochs, lr 2e-4),
2 epochs at lr 5e-5, LambdaLoss over 4 mined hard negatives, and LoRA (r 16, lr 1e-3). Each row:
training wall time, s1-relevance metrics with intervals, DeLong on ROC-AUC against the embedding
grader. Results go to bench/results.json under "rerankers" (read-modify-write of that key only)."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


from bench.results_file import intervals, update

KEY = "rerankers"
BASE = {"batch_size": 16, "max_length": 96, "precision": "bf16"}
VARIANTS = {
    "80 steps, lr 1e-4 (former demo)": {"steps": 80, "lr": 1e-4},
    "2 epochs, lr 2e-4 (quick profile)": {"epochs": 2.0, "lr": 2e-4},
    "2 epochs, lr 5e-5": {"epochs": 2.0, "lr": 5e-5},
    "lambda, 4 hard negatives, 2 epochs, lr 1e-4": {"loss": "lambda", "negatives": 4, "epochs": 2.0, "lr": 1e-4},
    "LoRA r 16, 2 epochs, lr 1e-3": {"lora": True, "epochs": 2.0, "lr": 1e-3},
}
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")


def delong_vs_embedding(comparisons: list[dict], spec: str) -> dict | None:
    """The DeLong entry between ``spec`` and the embedding grader, as ``spec`` minus embedding."""
    for c in comparisons:
        if c["test"] == "delong" and {c["a"], c["b"]} == {spec, "embedding"}:
            sign = 1 if c["a"] == spec else -1
            low, high = sorted((sign * c["low"], sign * c["high"]))
            return {"mean_diff": sign * c["mean_diff"], "low": low, "high": high, "p_value": c["p_value"]}
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-pairs", type=int, default=400)
    ap.add_argument("--train-pairs", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out-dir", default="runs/rerankers")
    args = ap.parse_args(argv)

    from lorag_harness.evaluation.runner import BenchConfig, load_dataset, run_bench
    from lorag_harness.trainers.rerank_train import RerankConfig, train_reranker

    options = {"n_train": args.train_pairs, "n_eval": args.eval_pairs, "seed": args.seed}
    dataset = load_dataset("reuters-r8", options)
    rows, specs = {}, {}
    for i, (name, values) in enumerate(VARIANTS.items()):
        folder = Path(args.out_dir) / f"v{i}"
        start = time.perf_counter()
        manifest = train_reranker(RerankConfig(out=str(folder), seed=args.seed, **(BASE | values)), dataset)
        rows[name] = {"config": BASE | values, "train_s": round(time.perf_counter() - start, 1),
                      "steps": manifest["metrics"]["steps"], "final_loss": round(manifest["metrics"]["final_loss"], 4)}
        specs[f"cross-encoder:{folder}"] = name
    result = run_bench(BenchConfig(graders=["embedding", *specs], tasks=["s1-relevance"], dataset="reuters-r8",
                                   dataset_options=options), dataset=dataset).to_dict()
    metrics = result["results"]["s1-relevance"]
    pick = lambda g: intervals(metrics[g]["metrics"], METRICS)  # noqa: E731
    for spec, name in specs.items():
        rows[name]["metrics"] = pick(spec)
        rows[name]["vs_embedding_delong"] = delong_vs_embedding(result["comparisons"]["s1-relevance"], spec)
    out = {"dataset": "reuters-r8", "train_pairs": len(dataset.train_pairs), "eval_pairs": len(dataset.eval_pairs),
           "embedding": pick("embedding"), "rows": rows, "load_average": os.getloadavg()[0],
           "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, r in rows.items():
        d = r["vs_embedding_delong"] or {}
        print(f"{name:45s} train {r['train_s']:6.1f} s  AUC {r['metrics']['roc_auc']['value']:.3f}  "
              f"vs embedding {d.get('mean_diff', float('nan')):+.3f} (p {d.get('p_value', float('nan')):.2g})")
    update(KEY, out)


if __name__ == "__main__":
    main()
