"""``lorag bench`` and ``lorag check``: graders × tasks on a dataset; a grader plug-in against the contract."""
from __future__ import annotations

import sys

import click
from rich.text import Text

from lorag_harness.api import registry
from lorag_harness.cli.options import (Finite, apply, cache_options, dataset_option, given, grader_build_options,
                                       grader_build_values, seed_option)
from lorag_harness.errors import LoragError
from lorag_harness.retrieval.fusion import FUSIONS


def _first_stage_option(ctx, param, value):
    if value is None or value in ("bm25", "dense") or (value.startswith("run:") and len(value) > 4):
        return value
    raise click.BadParameter(f"{value!r} is not bm25, dense or run:FILE", ctx, param)


def bench_options(f):
    f = grader_build_options(cache_options(f))
    return apply(f, [
        click.option("--graders", "-g", default="base,embedding", show_default=True, help="Comma-separated grader specs, e.g. base,s1:adapters/s1"),
        click.option("--tasks", "-t", default=None,
                     help="Comma-separated tasks [default: s1-relevance,s2-reasoning,rag-p5, skipping, with a notice, "
                          "those the dataset cannot feed]"),
        dataset_option(),
        click.option("--eval-pairs", type=click.IntRange(min=2), default=200, show_default=True),
        click.option("--train-pairs", type=click.IntRange(min=1), default=400, show_default=True),
        click.option("--s2-pairs", type=click.IntRange(min=1), default=32, show_default=True, help="Pairs for which reasons are generated"),
        click.option("--rag-queries", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--rag-k", type=click.IntRange(min=5), default=20, show_default=True),
        click.option("--corpus-size", type=click.IntRange(min=1), default=300, show_default=True),
        seed_option(),
        click.option("--split", type=click.Choice(["train", "dev", "test"]), default=None,
                     help="beir:DIR, hf:NAME: the qrels split to evaluate on [default: test]"),
        click.option("--first-stage", default=None, callback=_first_stage_option,
                     help="rerank, judge-agreement: the first-stage retriever, bm25 or dense [default: bm25]; "
                          "rerank: also run:FILE, a TREC run file from any retriever"),
        click.option("--calibrate", type=click.Choice(["isotonic", "platt"]), default=None,
                     help="s1-relevance: map each grader's scores to P(relevant), fitted on the training pairs only "
                          "(monotone increasing); adds brier_cal and ece_cal"),
        click.option("--rerank-k", type=click.IntRange(min=1), default=None,
                     help="rerank: candidates per query from the first stage [default: 100]; judge-agreement: 20"),
        click.option("--fusion", type=click.Choice(FUSIONS), default="none", show_default=True,
                     help="rerank: rrf ranks by reciprocal rank fusion (k=60) of each grader's order with the first "
                          "stage's, the field's hybrid; none: the grader's order alone"),
        click.option("--rerank-queries", type=click.IntRange(min=1), default=None,
                     help="rerank, judge-agreement: evaluate only the first N judged queries [default: all]"),
        click.option("--positive-rate", type=Finite(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True,
                     help="Share of relevant pairs built from labelled documents (the Lightweight Relevance Grader paper: 0.123)"),
        click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the report here"),
        click.option("--format", "fmt", type=click.Choice(["json", "markdown", "html"]), default=None, help="Report format (default: from --out suffix)"),
        click.option("--force", is_flag=True, help="Overwrite --out even if it is not a lorag report"),
        click.option("--allow-worse-than-random", is_flag=True,
                     help="rerank: exit 0 even when a grader ranks significantly below a random order (still reported)"),
    ])


def config_from(o: dict):
    from lorag_harness.evaluation.bench import DEFAULT_TASKS
    from lorag_harness.evaluation.runner import BenchConfig

    graders = [g.strip() for g in o["graders"].split(",") if g.strip()]
    tasks = [t.strip() for t in (o["tasks"] or "").split(",") if t.strip()]
    if not graders:
        raise LoragError("--graders names no grader")
    if o["tasks"] is not None and not tasks:
        raise LoragError("--tasks names no task")
    if (o["first_stage"] or "").startswith("run:") and "judge-agreement" in tasks:
        raise LoragError(f"--first-stage {o['first_stage']}: a run file feeds the rerank task only, not judge-agreement")
    if o["fusion"] != "none" and "rerank" not in tasks:
        raise LoragError(f"--fusion {o['fusion']}: only the rerank task fuses rankings: add -t rerank")
    if o["split"] and o["dataset"].startswith("irds:"):
        raise LoragError(f"--split: an irds: id names its split ({o['dataset']}/{o['split']}, e.g. irds:beir/scifact/test)")
    if o["split"] and not o["dataset"].startswith(("beir:", "hf:")):
        raise LoragError(f"--split applies to beir:DIR and hf:NAME datasets only, not {o['dataset']!r}")
    return BenchConfig(
        graders=graders,
        tasks=tasks or list(DEFAULT_TASKS),
        skip_unfit_tasks=o["tasks"] is None,
        dataset=o["dataset"],
        dataset_options={"n_train": given(o, "train_pairs"), "n_eval": given(o, "eval_pairs"), "corpus_size": o["corpus_size"],
                         "n_queries": o["rag_queries"], "seed": o["seed"],
                         "positive_rate": o["positive_rate"], "split": o["split"]},
        task_options={"*": {"embedder": o["embedder"]}, "s2-reasoning": {"limit": o["s2_pairs"]},
                      "s1-relevance": {"calibrate": o["calibrate"]},
                      "rag-p5": {"k": o["rag_k"], "n_queries": o["rag_queries"]},
                      "rerank": {"k": o["rerank_k"], "first_stage": o["first_stage"], "n_queries": o["rerank_queries"],
                                 "fusion": o["fusion"]},
                      "judge-agreement": {"k": o["rerank_k"], "first_stage": o["first_stage"],
                                          "n_queries": o["rerank_queries"]}},
        cache_path=":memory:" if o["no_cache"] else o["cache_path"],
        **grader_build_values(o),
    )


@click.command()
@bench_options
@click.option("--save-runs", type=click.Path(file_okay=False), default=None,
              help="rerank: write the first stage's run, one TREC run file per grader and the evaluated qrels here")
def bench(save_runs, **o):
    """Run graders × tasks on a dataset and print a comparison table."""
    from lorag_harness.cli.output import console, err
    from lorag_harness.evaluation.bench import run_and_report
    from lorag_harness.plugins import pm

    config = config_from(o)
    if save_runs and "rerank" not in config.tasks:
        raise LoragError(f"--save-runs {save_runs}: only the rerank task makes runs: add -t rerank")
    result = run_and_report(config, o["out"], o["fmt"], pm=pm, console=console, err=err, force=o["force"],
                            save_runs=save_runs)
    if result.alerts and not o["allow_worse_than_random"]:
        err.print(Text("error: ", style="bold red") + Text(f"{len(result.alerts)} result(s) worse than a random order "
                                                           "(above); exit 3 (--allow-worse-than-random: exit 0)"), soft_wrap=True)
        sys.exit(3)


@click.command()
@click.argument("specs", nargs=-1, required=True)
@grader_build_options
@dataset_option(None, "Dataset whose training pairs calibrating graders see, e.g. reuters-r8")
@click.option("--train-pairs", type=click.IntRange(min=1), default=40, show_default=True, help="With --dataset")
@click.option("--no-reasons", is_flag=True, help="Do not ask for reasons")
@click.option("--nondeterministic", is_flag=True, help="Decisions may change between calls (e.g. a sampled API)")
def check(specs, dataset, train_pairs, no_reasons, nondeterministic, **o):
    """Check grader plug-ins against the grader contract (a plug-in author's checker).

    Builds each GRADER_SPEC (e.g. mine:arg) through the registry and grades six small labelled pairs:
    output count, order and types, advance() totals, reasons, an empty batch, fingerprint stability."""
    from lorag_harness.cli.output import console
    from lorag_harness.evaluation.runner import build_grader, load_dataset
    from lorag_harness.plugins import pm
    from lorag_harness.testing import contract_problems

    ds = load_dataset(dataset, {"n_train": train_pairs, "n_eval": 2}, pm) if dataset else None
    context = registry.GraderSettings(**grader_build_values(o)).grader_context(ds)  # --precision and --quant too
    failed = 0
    for spec in specs:
        registry.lookup(registry.graders(pm), spec, "grader")
    for spec in specs:
        try:
            grader = build_grader(spec, context, pm)
        except Exception as e:  # noqa: BLE001 - a factory that raises (or refuses) is a problem of the plug-in
            problems = [str(e).removeprefix(f"grader {spec}: ")]
        else:
            problems = contract_problems(grader, reasons=not no_reasons, deterministic=not nondeterministic)
        for problem in problems:
            console.print(f"{spec}: {problem}", soft_wrap=True, markup=False, emoji=False)
        if not problems:
            console.print(f"{spec}: ok", markup=False, emoji=False)
        failed += bool(problems)
    if failed:
        sys.exit(1)
