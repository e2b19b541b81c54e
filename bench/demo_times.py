"""Store a finished `lorag demo` run's stage times (wall and CPU seconds), its machine and its headline
figures in bench/results.json under "demo", one entry per NAME (e.g. avx512_bf16, avx2_emulated).

    .venv/bin/python -m bench.demo_times NAME RUN_DIR [--uptime FILE] [--note TEXT]

RUN_DIR is the demo's --out-dir (its report.json and adapters/s1/manifest.json are read); --uptime a
file with `uptime` lines taken before and after the run (the load beside the times)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def delong(report: dict) -> list[dict]:
    """The report's DeLong tests on s1-relevance ROC-AUC: a, b, difference, p."""
    return [{"a": c["a"], "b": c["b"], "diff": round(c["mean_diff"], 4), "p": c["p_value"]}
            for c in report.get("comparisons", {}).get("s1-relevance", []) if c.get("test") == "delong"]


def summary(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    config = report["config"]
    s1 = json.loads((run_dir / "adapters" / "s1" / "manifest.json").read_text())
    auc = {g: report["results"]["s1-relevance"][g]["metrics"]["roc_auc"]["value"]
           for g in report["results"].get("s1-relevance", {})}
    stages, cpu = config.get("demo_stages", {}), config.get("demo_stages_cpu", {})
    return {"stages_wall_s": stages, "stages_cpu_s": cpu, "total_wall_s": round(sum(stages.values()), 1),
            "total_cpu_s": round(sum(cpu.values()), 1), "machine": config.get("demo_machine"),
            "partial": bool(report.get("partial")), "eval_roc_auc": auc, "s1_relevance_delong": delong(report),
            "s1": {"steps_run": s1["metrics"]["steps_run"], "budget": s1.get("budget"), "weak": s1.get("weak"),
                   "validation_best_auc": s1["validation"]["best_auc"],
                   "validation_curve": [(c["step"], c["auc"]) for c in s1["validation"]["curve"]]},
            "profile": config.get("demo_profile")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("run_dir")
    ap.add_argument("--uptime", help="file with `uptime` lines before and after the run")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    row = summary(Path(args.run_dir))
    if args.uptime:
        row["uptime_before_after"] = Path(args.uptime).read_text().strip().splitlines()
    if args.note:
        row["note"] = args.note
    print(json.dumps({k: row[k] for k in ("stages_wall_s", "stages_cpu_s", "total_wall_s", "total_cpu_s", "eval_roc_auc")},
                     indent=1))
    from bench.results_file import update

    update("demo", change=lambda mine: mine.__setitem__(args.name, row),
           precision=(row["machine"] or {}).get("precision"))


if __name__ == "__main__":
    main()
