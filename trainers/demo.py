"""``lorag demo``: train S1 and S2 with a profile, then benchmark base, s1, s2 (free and constrained) and embedding."""
from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from .profiles import PROFILES

err = Console(stderr=True)


@click.command()
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="quick", show_default=True)
@click.option("--out-dir", default="runs/demo", show_default=True, help="Adapters and report go here")
@click.option("--retrain", is_flag=True, help="Train again even if the adapters are current")
@click.option("--eval-pairs", type=click.IntRange(min=2), default=200, show_default=True)
@click.option("--train-pairs", type=click.IntRange(min=1), default=1600, show_default=True)
@click.option("--s2-pairs", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--rag-queries", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--base-model", default=None)
@click.option("--seed", type=int, default=13, show_default=True)
def demo(profile, out_dir, retrain, eval_pairs, train_pairs, s2_pairs, rag_queries, base_model, seed):
    """Train S1 and S2 on Reuters R8, then compare base, s1, s2, s2-json and embedding on all three tasks."""
    from lorag_harness.bench_run import run_and_report
    from lorag_harness.runner import BenchConfig, load_dataset

    from .commands import train_with_progress
    from .train import TrainConfig, is_current

    start = time.perf_counter()
    out = Path(out_dir)
    options = {"n_train": train_pairs, "n_eval": eval_pairs, "n_queries": rag_queries, "seed": seed}
    dataset = load_dataset("reuters-r8", options)
    s1, s2 = out / "adapters" / "s1", out / "adapters" / "s2"
    for stage, folder, init in (("s1", s1, None), ("s2", s2, s1)):
        cfg = TrainConfig(stage=stage, out=str(folder), base_model=base_model, init_adapter=str(init) if init else None,
                          seed=seed, **PROFILES[profile][stage])
        if not retrain and is_current(cfg, dataset.train_pairs):
            err.print(f"{stage}: {folder} is current, not retrained (--retrain to force)")
            continue
        train_with_progress(cfg, dataset)
    max_doc = PROFILES[profile]["s1"].get("max_doc_tokens", 160)
    config = BenchConfig(
        graders=["base", f"s1:{s1}", f"s2:{s2}", f"s2-json:{s2}", "embedding"], tasks=["s1-relevance", "s2-reasoning", "rag-p5"],
        dataset="reuters-r8", dataset_options=options, base_model=base_model, max_doc_tokens=max_doc,
        task_options={"s2-reasoning": {"limit": s2_pairs}, "rag-p5": {"n_queries": rag_queries}},
    )
    run_and_report(config, str(out / "report.json"), None, dataset=dataset)
    err.print(f"demo finished in {time.perf_counter() - start:.0f} s")
