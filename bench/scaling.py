"""Pairs/s of `lorag grade`: the local executor and Ray with 1 and 2 actors, embedding and LM graders.

    nice -n 10 python bench/scaling.py [--pairs-embedding 400] [--pairs-lm 160]

The same pairs (bench/make_pairs.py's first N rows) for every executor, no judgment cache, one run.
Per run: wall time from the first read to the last row written (Ray: actors start and load their
model inside it), the time to the first written batch, and the steady rate after it. Decisions are
compared with the local executor's. Results under the "scaling" key of bench/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.make_pairs import pairs as make_pairs
from bench.results_file import update

from lorag_harness.batch.command import GradeConfig, build

from bench.results_file import RESULTS


def run(cfg: GradeConfig, executor: str, actors: int) -> dict:
    from lorag_harness.batch.command import grade_locally
    from lorag_harness.batch.ray_executor import grade_on_ray

    cfg.executor, cfg.actors = executor, actors
    source, grader, _ = build(cfg)
    total = source.count()
    stamps, decisions = [], []

    def take(ids, judgments):
        stamps.append((time.perf_counter(), len(ids)))
        decisions.extend(j.relevant for j in judgments)

    start = time.perf_counter()
    if executor == "ray":
        grade_on_ray(source, source.start(), total, grader, cfg, None, take)
    else:
        grade_locally(source, source.start(), grader, cfg, take)
    end = time.perf_counter()
    assert sum(n for _, n in stamps) == total
    first_t, first_n = stamps[0]
    steady = (total - first_n) / (end - first_t) if end > first_t and total > first_n else None
    return {"pairs": total, "seconds": round(end - start, 2), "pairs_per_s": round(total / (end - start), 2),
            "first_batch_s": round(first_t - start, 2), "steady_pairs_per_s": steady and round(steady, 2),
            "decisions": decisions}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs-embedding", type=int, default=400)
    ap.add_argument("--pairs-lm", type=int, default=160)
    ap.add_argument("--max-doc-tokens", type=int, default=48)
    ap.add_argument("--graders", default="embedding,base")
    ap.add_argument("--results", default=str(RESULTS))
    a = ap.parse_args()

    import ray

    load_before = os.getloadavg()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    tmp = Path(tempfile.mkdtemp(prefix="lorag-scaling-"))
    out: dict = {"cpus": os.cpu_count(), "max_doc_tokens": a.max_doc_tokens, "graders": {}}
    try:
        for spec in a.graders.split(","):
            n = a.pairs_embedding if spec.startswith("embedding") else a.pairs_lm
            src = tmp / f"pairs-{n}.jsonl"
            with open(src, "w") as fh:
                for row in make_pairs(n, 120, 13):
                    fh.write(json.dumps(row) + "\n")
            rows = {}
            for name, executor, actors in (("local", "local", 1), ("ray-1", "ray", 1), ("ray-2", "ray", 2)):
                cfg = GradeConfig(grader=spec, input=str(src), out=str(tmp / f"{spec}-{name}.jsonl"),
                                  dataset="reuters-r8" if spec.startswith("embedding") else None,
                                  max_doc_tokens=a.max_doc_tokens, cache_path=":memory:", chunk_rows=32, force=True)
                rows[name] = run(cfg, executor, actors)
                print(spec, name, {k: v for k, v in rows[name].items() if k != "decisions"}, flush=True)
            local = rows["local"]["decisions"]
            for r in rows.values():
                r["same_decisions_as_local"] = sum(x == y for x, y in zip(r.pop("decisions"), local))
            out["graders"][spec] = rows
    finally:
        ray.shutdown()
    out["loadavg_before"] = [round(x, 1) for x in load_before]
    out["loadavg_after"] = [round(x, 1) for x in os.getloadavg()]
    update("scaling", out, path=a.results)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
