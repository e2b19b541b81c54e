"""Stage-1 training cost on this CPU: one S1 run on the demo's data (Reuters R8, 1,600 training pairs,
seed 13) with the quick profile and TrainConfig overrides, logging validation AUC against steps and
wall time, with the machine (CPU, capability, precision, load average). AVX2-only CPUs can be
emulated with MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2.

    nice -n 5 .venv/bin/python -m bench.s1_cpu NAME [key=value ...] [--out runs/s1_cpu.jsonl]

Each run appends one JSON line to --out; `--record` also stores it in bench/results.json under
"s1_cpu" (read-modify-write of that key only)."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.s1_datasets import coerce


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("set", nargs="*", help="TrainConfig overrides key=value")
    ap.add_argument("--train-pairs", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", default="runs/s1_cpu.jsonl")
    ap.add_argument("--record", action="store_true", help="Also store the run in bench/results.json")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from lorag_harness.backends import precision
    from lorag_harness.evaluation.runner import load_dataset
    from lorag_harness.trainers.profiles import PROFILES
    from lorag_harness.trainers.train import TrainConfig, train

    overrides = dict(kv.split("=", 1) for kv in args.set)
    values = PROFILES["quick"]["s1"] | {k: coerce(v) for k, v in overrides.items()}
    dataset = load_dataset("reuters-r8", {"n_train": args.train_pairs, "n_eval": 200, "seed": args.seed,
                                          "positive_rate": 0.5})
    start = time.perf_counter()
    cpu0 = time.process_time()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(stage="s1", out=str(Path(tmp) / "s1"), seed=args.seed, **values)

        def progress(step, total, loss, auc):
            print(f"  step {step}/{total} loss {loss:.3f} val {auc} t={time.perf_counter() - start:.0f}s "
                  f"cpu={time.process_time() - cpu0:.0f}s load={os.getloadavg()[0]:.1f}", flush=True)

        m = train(cfg, dataset, progress, log=lambda line: print(line, flush=True))
    row = {"name": args.name, "overrides": overrides, "wall_s": round(time.perf_counter() - start, 1),
           "cpu_s": round(time.process_time() - cpu0, 1), "threads": args.threads or None,
           "train_s": m["metrics"]["seconds"], "steps_run": m["metrics"]["steps_run"],
           "steps_per_s": round(m["metrics"]["steps_per_s"], 4), "stopped": m["metrics"]["stopped"],
           "first_loss": round(m["metrics"]["first_loss"], 4), "final_loss": round(m["metrics"]["final_loss"], 4),
           "validation_seconds": m["metrics"]["validation_seconds"], "validation": m.get("validation"),
           "weak": m.get("weak"), "budget": m.get("budget"), "machine": m["machine"],
           "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "probe": precision.probe() if m["machine"]["precision"] else None,
           "env": precision.isa_limits()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    v = row["validation"] or {}
    print(json.dumps({k: row[k] for k in ("name", "train_s", "steps_run", "steps_per_s", "stopped")}),
          "best AUC", v.get("best_auc"), "curve", [(c["step"], c["auc"], c["seconds"]) for c in v.get("curve", [])])
    if args.record:
        from bench.results_file import update

        update("s1_cpu", change=lambda mine: mine.__setitem__(args.name, row))


if __name__ == "__main__":
    main()
