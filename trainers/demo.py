"""``lorag demo``: train S1, S2 and a cross-encoder reranker (and, with ``--with cls``, a
classification head), then compare them with the prompted base and the embedding grader.
Each stage's wall time is printed and stored in the report (``config.demo_stages``)."""
from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lorag_harness.cli.options import Finite

from .profiles import PROFILES

err = Console(stderr=True)
EXTRAS = ("cls", "s2-json")
DEMO_S1_BUDGET = {"quick": 120.0}  # seconds for S1 in the demo (lorag train s1 has the profile's own)
# The demo trains shorter than the profile (docs/training.md has the runs): S1 for 40 steps (below); S2
# 24 steps at 3e-4 (better reasons than 1.5e-4 in as many steps, for a lower ranking), calibrated on
# 128 pairs; the reranker one epoch, calibrated on 256. S1 keeps batches of 16: on batches of 8 a
# native bf16 run ended weak (validation AUC 0.86, its loss swinging between 0.1 and 1.5 late in the run)
DEMO = {"quick": {"s2": {"steps": 24, "lr": 3e-4, "calibration_pairs": 128},
                  "reranker": {"epochs": 1.0, "calibration_pairs": 256}}}
# without --time-budget, an S1 budget that holds fewer than min_steps grows to hold them (up to
# time_budget_max seconds, else the demo stops before training)
DEMO_S1_GROWTH = {"quick": {"min_steps": 40, "time_budget_max": 900.0}}
# S1 below the done-when's validation ROC-AUC at its planned end goes on 20 steps at a time, budget allowing
DEMO_S1_TARGET = {"quick": {"target_auc": 0.9}}


class Stages:
    """Wall time and CPU seconds (user + system) per stage, printed as each ends."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()  # user + system, all threads
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 1)
            self.cpu[name] = round(time.process_time() - cpu, 1)
            err.print(f"[dim]stage {name}: {self.seconds[name]:.0f} s ({self.cpu[name]:.0f} CPU-s)[/]")

    def table(self) -> Table:
        table = Table(title="demo stages (wall time, CPU seconds)", title_justify="left", header_style="bold")
        table.add_column("stage")
        table.add_column("s", justify="right")
        table.add_column("CPU-s", justify="right")
        for name, s in self.seconds.items():
            table.add_row(name, f"{s:.0f}", f"{self.cpu.get(name, 0):.0f}")
        table.add_row("[bold]total[/]", f"[bold]{sum(self.seconds.values()):.0f}[/]", f"[bold]{sum(self.cpu.values()):.0f}[/]")
        return table


def merge_results(parts, tasks, pm=None):
    """One BenchResult from runs over the same dataset with different graders."""
    from lorag_harness.evaluation.runner import build_task

    first = parts[0]
    for other in parts[1:]:
        first.graders += [g for g in other.graders if g not in first.graders]
        first.tasks += [t for t in other.tasks if t not in first.tasks]
        for task, by in other.results.items():
            first.results.setdefault(task, {}).update(by)
        for grader, by in other.timings.items():  # a grader run in two parts keeps both parts' tasks
            first.timings.setdefault(grader, {}).update(by)
        first.notes += [n for n in other.notes if n not in first.notes]
        first.alerts += [a for a in other.alerts if a not in first.alerts]
        first.partial = first.partial or other.partial
    first.tasks = [t for t in tasks if t in first.tasks] + [t for t in first.tasks if t not in tasks]
    first.results = {t: first.results[t] for t in first.tasks if t in first.results}
    first.comparisons = {t: build_task(t, {}, pm).compare(first.results[t]) for t in first.tasks if t in tasks}
    first.config.update({k: list(getattr(first, k)) for k in ("graders", "tasks") if k in first.config})
    return first


@click.command()
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="quick", show_default=True)
@click.option("--out-dir", default="runs/demo", show_default=True, help="Models and report go here")
@click.option("--retrain", is_flag=True, help="Train again even if the models are current")
@click.option("--with", "extras", type=click.Choice(EXTRAS), multiple=True,
              help="Also train and grade with a classification head (cls), or grade S2 with constrained JSON (s2-json)")
@click.option("--eval-pairs", type=click.IntRange(min=2), default=200, show_default=True)
@click.option("--train-pairs", type=click.IntRange(min=1), default=1600, show_default=True)
@click.option("--positive-rate", type=Finite(0.0, 1.0, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Share of relevant pairs (0.123: the Lightweight Relevance Grader setting)")
@click.option("--s2-pairs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--rag-queries", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--base-model", default=None, help="Decoder for base, s1, s2 and cls (default: packaged SmolLM2)")
@click.option("--reranker-from", default=None, help="Reranker start (default: the packaged all-MiniLM-L6-v2 encoder)")
@click.option("--time-budget", default=None,
              help="Wall time for S1's training loop (90s, 10m): its steps are chosen to fit [quick: 2m, grown to hold 40 steps; full: none]")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Training and grading: auto picks bfloat16 where a matmul probe measured it faster on this machine")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--allow-weak", is_flag=True,
              help="Go on after a weak S1 (S2 starts from it; its graders warn) instead of stopping with exit 3")
def demo(profile, out_dir, retrain, extras, eval_pairs, train_pairs, positive_rate, s2_pairs, rag_queries, base_model,
         reranker_from, time_budget, precision, seed, allow_weak):
    """Train S1, S2 and a reranker on Reuters R8, then compare base, s1, s2, reranker and embedding
    (and cls, s2-json with --with) on relevance, reasons and RAG P@5."""
    from lorag_harness.evaluation.bench import stdout_console
    from lorag_harness.evaluation.preflight import check_output, check_replaceable
    from lorag_harness.errors import LoragError
    from lorag_harness.reports.files import write_report
    from lorag_harness.reports.terminal import print_report
    from lorag_harness.evaluation.runner import BenchConfig, IncompleteRun, load_dataset, partial_record, run_bench

    from .cls_train import ClsConfig, train_cls
    from .progress import train_with_progress
    from .common import is_current as model_is_current, run_with_progress
    from .rerank_train import RerankConfig, train_reranker
    from .train import TrainConfig, is_current

    from lorag_harness.backends import precision as machine_precision

    from .budget import BudgetTooSmall
    from .diagnostics import parse_duration

    # a bad value stops here, before any work
    s1_budget = parse_duration(time_budget) if time_budget else DEMO_S1_BUDGET.get(profile)
    used = machine_precision.resolve(precision)
    decoded = machine_precision.resolve(precision, work="decode", warn=False)  # the LM graders' reasons
    err.print(f"demo: {machine_precision.describe(machine_precision.machine(used, decoded))}", soft_wrap=True)
    stages = Stages()
    out = Path(out_dir)
    report = out / "report.json"
    check_output(str(report), option="--out-dir")
    keep = "move it away, or choose another --out-dir"
    check_replaceable(str(report), option="--out-dir", fix=keep)  # a report.json lorag did not write is kept
    from .outputs import claim

    for kind, sub in (("s1-adapter", "adapters/s1"), ("s2-adapter", "adapters/s2"), ("cross-encoder", "models/reranker"),
                      ("cls", "models/cls")):  # another kind of model or other files: refused before work
        claim(out / sub, kind, option="--out-dir", fix=keep)  # its own earlier models of that kind are retrained
    options = {"n_train": train_pairs, "n_eval": eval_pairs, "n_queries": rag_queries, "seed": seed,
               "positive_rate": positive_rate}
    dataset = stages.run("dataset", load_dataset, "reuters-r8", options)
    prof, trained_with = PROFILES[profile], {}

    def stage_values(stage: str) -> dict:  # the profile's values, the demo's shorter ones, the precision asked for
        trained_with[stage] = prof.get(stage, {}) | DEMO.get(profile, {}).get(stage, {}) | {"precision": precision}
        return trained_with[stage]

    s1, s2 = out / "adapters" / "s1", out / "adapters" / "s2"
    rr, cls = out / "models" / "reranker", out / "models" / "cls"
    for stage, folder, init in (("s1", s1, None), ("s2", s2, s1)):
        values = stage_values(stage)
        if stage == "s1":
            growth = {} if time_budget else DEMO_S1_GROWTH.get(profile, {})  # a budget given is kept to
            values |= {"time_budget": s1_budget} | growth
            if growth and values.get("val_pairs", 1):  # a target needs room to grow and a validation slice
                values |= DEMO_S1_TARGET.get(profile, {})
        cfg = TrainConfig(stage=stage, out=str(folder), base_model=base_model, init_adapter=str(init) if init else None,
                          seed=seed, force=True, **values)
        if not retrain and is_current(cfg, dataset.train_pairs):
            err.print(f"{stage}: {folder} is current, not retrained (--retrain to force)")
        else:
            try:
                stages.run(f"train {stage}", train_with_progress, cfg, dataset)
            except BudgetTooSmall as refused:
                stop_at_s1(str(refused), None)
        if stage == "s1":
            from lorag_harness.backends.lm import adapter_manifest

            manifest = adapter_manifest(folder)
            if manifest.get("weak") and not allow_weak:  # S2 and the comparison would be built on it
                stop_at_s1(None, manifest, str(folder))
            if manifest.get("weak"):
                err.print(f"[bold red]{folder} is a weak adapter[/] (--allow-weak): S2 starts from it", soft_wrap=True)
    trainers = [("reranker", RerankConfig(out=str(rr), base_model=reranker_from, seed=seed, force=True,
                                          **stage_values("reranker")), train_reranker)]
    if "cls" in extras:
        trainers.append(("cls", ClsConfig(out=str(cls), base_model=base_model, seed=seed, force=True,
                                          **stage_values("cls")), train_cls))
    for what, cfg, fn in trainers:
        if not retrain and model_is_current(cfg, dataset.train_pairs):
            err.print(f"{what}: {cfg.out} is current, not retrained (--retrain to force)")
            continue
        stages.run(f"train {what}", run_with_progress, fn, cfg, dataset, what)

    max_doc = prof["s1"].get("max_doc_tokens", 160)
    lm_graders = ["base", f"s1:{s1}", f"s2:{s2}"] + ([f"s2-json:{s2}"] if "s2-json" in extras else [])
    fast_graders = ["embedding", f"cross-encoder:{rr}"] + ([f"cls:{cls}"] if "cls" in extras else [])
    common = dict(dataset="reuters-r8", dataset_options=options, base_model=base_model, max_doc_tokens=max_doc,
                  precision=precision, task_options={"s2-reasoning": {"limit": s2_pairs}, "rag-p5": {"n_queries": rag_queries}})
    # S1 is trained to stop after the relevant value (no reason), the reranker and cls give none: only
    # the graders that write reasons run s2-reasoning, the costliest task (greedy decoding)
    reasoners = [g for g in lm_graders if not g.startswith("s1:")]
    runs = [("bench LM graders", BenchConfig(graders=lm_graders, tasks=["s1-relevance", "rag-p5"], **common)),
            ("bench reasons", BenchConfig(graders=reasoners, tasks=["s2-reasoning"], **common)),
            ("bench embedding, reranker" + (", cls" if "cls" in extras else ""),
             BenchConfig(graders=fast_graders, tasks=["s1-relevance", "rag-p5"], **common))]
    parts, failure, not_run = [], None, []
    for i, (name, config) in enumerate(runs):
        try:
            parts.append(stages.run(name, run_bench, config, None, err, dataset=dataset))
        except IncompleteRun as stopped:  # keep what finished, report it, then fail
            parts.append(stopped.result)
            failure = stopped.cause
        except LoragError as refused:  # a later run refused before work (a grader that does not load)
            if not parts:
                raise
            failure = refused
            parts[0].partial = partial_record(refused, None, None,
                                              [f"{g} · {t}" for g in config.graders for t in config.tasks])
        if failure is not None:  # the runs after it are not started: their cells are missing too
            not_run = [f"{g} · {t}" for _, later in runs[i + 1:] for g in later.graders for t in later.tasks]
            break
    result = merge_results(parts, ["s1-relevance", "s2-reasoning", "rag-p5"])
    if result.partial is not None:
        result.partial["missing"] = list(result.partial.get("missing", [])) + not_run
    if "s2-reasoning" in result.results:
        result.notes.append(f"s2-reasoning: {s1} not run (stage 1 is trained to stop after the relevant value: "
                            "it writes no reason)")
    result.config["demo_stages"] = dict(stages.seconds)
    result.config["demo_stages_cpu"] = dict(stages.cpu)  # user + system CPU seconds of each stage
    result.config["demo_profile"] = prof | trained_with  # the values trained with
    result.config["demo_machine"] = machine_precision.machine(used, decoded)  # where the stage times were measured
    console = stdout_console()
    print_report(result, console)
    console.print(stages.table())
    path = write_report(result, report, None)
    console.print(f"{'partial ' if result.partial else ''}report written to {path}")
    if failure is not None:
        raise failure
    err.print(f"demo finished in {sum(stages.seconds.values()):.0f} s on "
              f"{machine_precision.describe(machine_precision.machine(used, decoded))}", soft_wrap=True)


DEMO_STOP_EXIT = 3  # as `lorag train` for a weak adapter


def stop_at_s1(refusal: str | None, manifest: dict | None, folder: str = "") -> None:
    """One paragraph on why the demo stops after S1 (refused: the budget cannot hold a useful run; or a
    weak adapter), with the measured rate and the fix; then exit 3. S2 is not trained from it."""
    if refusal is not None:  # its fixes name `lorag train s1` options: the demo's own are below
        what = f"S1 was not trained: {refusal.split(' Fix: ')[0]}"
    else:
        m, v = manifest.get("metrics", {}), manifest.get("validation") or {}
        h = manifest.get("hyperparameters", {})
        machine = manifest.get("machine") or {}
        from lorag_harness.backends.precision import describe

        rate = (f"It ran {m.get('steps_run')} of {h.get('steps')} planned steps in {m.get('seconds', 0):.0f} s "
                f"({m.get('steps_per_s', 0):.3f} steps/s, batch {h.get('batch_size')}, {h.get('precision_used')}) on "
                f"{describe(machine)}")
        auc = (f"; its best validation ROC-AUC was {v['best_auc']:.3f} (the base model: {v['base_auc']:.3f})"
               if v else "")
        what = (f"S1 did not learn: {folder} is a weak adapter ({'; '.join(manifest.get('weak_reasons', []))}). "
                f"{rate}{auc}.")
    fix = ("Fix: give S1 more time (--time-budget 10m), use --precision fp32 if bf16 was used on a CPU without "
           "fast bfloat16, or train it alone with `lorag train s1` to see its validation curve; then run the demo "
           "again (finished models are reused), or add --allow-weak to go on from this S1.")
    if refusal is not None:  # the budget's other fixes (batch size, validation pairs, --steps) are `lorag train s1`'s
        fix = ("Fix: --precision fp32 where bf16 was measured slower, or a bigger --time-budget; `lorag train s1` "
               "also takes a smaller --batch-size, fewer --val-pairs or a fixed --steps.")
    from rich.text import Text

    err.print(Text("demo stopped after S1: ", style="bold red") +
              Text(f"{what} S2, the reranker and the comparison were not run. {fix}"), soft_wrap=True)
    raise SystemExit(DEMO_STOP_EXIT)
