"""Every grader at 12.3% relevant pairs (the Lightweight Relevance Grader paper's setting) on Reuters R8.

    nice -n 10 .venv/bin/python bench/prevalence.py [--rate 0.123] [--eval-pairs 400]

Runs `lorag demo --positive-rate RATE --with cls` (base, s1, s2, reranker, embedding and a cls head
trained without balancing, weighted cross-entropy only), then trains a second cls head with
`--balance both` on the same training pairs and grades the same evaluation pairs with it. Every
threshold comes from training pairs. Precision, recall, F1, average precision and ROC-AUC (95%
intervals) go to bench/results.json under "prevalence" (read-modify-write of that key only)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


from bench.results_file import intervals, update

KEY = "prevalence"
METRICS = ("precision", "recall", "f1", "average_precision", "roc_auc", "accuracy")


def rows_of(report: dict) -> dict:
    return {grader: intervals(res["metrics"], METRICS) for grader, res in report["results"]["s1-relevance"].items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0.123)
    ap.add_argument("--eval-pairs", type=int, default=400)
    ap.add_argument("--out-dir", default="runs/prevalence")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    lorag = [sys.executable, "-m", "lorag_harness"]
    start = time.perf_counter()
    subprocess.run(lorag + ["demo", "--positive-rate", str(args.rate), "--with", "cls", "--eval-pairs", str(args.eval_pairs),
                            "--out-dir", str(out)], check=True)
    demo_s = time.perf_counter() - start
    report = json.loads((out / "report.json").read_text())

    from lorag_harness.evaluation.runner import BenchConfig, load_dataset, run_bench
    from lorag_harness.trainers.cls_train import ClsConfig, train_cls
    from lorag_harness.trainers.profiles import PROFILES

    options = report["config"]["dataset_options"]
    dataset = load_dataset("reuters-r8", options)
    folder = out / "models" / "cls-balanced"
    t = time.perf_counter()
    manifest = train_cls(ClsConfig(out=str(folder), seed=options["seed"], **(PROFILES["quick"]["cls"] | {"balance": "both"})), dataset)
    cls_s = time.perf_counter() - t
    balanced = run_bench(BenchConfig(graders=[f"cls:{folder}"], tasks=["s1-relevance"], dataset="reuters-r8",
                                     dataset_options=options), dataset=dataset)
    rows = rows_of(report)
    rows.update({f"{g} (balance both)": v for g, v in rows_of(balanced.to_dict()).items()})
    result = {"positive_rate": args.rate, "eval_pairs": len(dataset.eval_pairs),
              "relevant_eval_pairs": sum(p.label for p in dataset.eval_pairs), "rows": rows,
              "demo_stages_s": report["config"].get("demo_stages"), "demo_wall_s": round(demo_s, 1),
              "cls_balanced_train_s": round(cls_s, 1), "cls_balanced_examples": manifest["metrics"]["rows"],
              "load_average": os.getloadavg()[0], "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for g, r in rows.items():
        print(f"{g:40s} " + "  ".join(f"{m} {r[m]['value']:.3f}" if r[m]["value"] is not None else f"{m} –" for m in METRICS))
    update(KEY, result)


if __name__ == "__main__":
    main()
