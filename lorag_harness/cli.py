"""The ``lorag`` command."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import registry
from .errors import LoragError
from .plugins import plugin_origins, pm

# bitsandbytes' CPU backend asks for the `kernels` package (which would fetch from the hub) on every
# import on AVX512-BF16 CPUs; NF4 works without it, so the warning only misleads
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "kernels-community" not in record.getMessage())

# piped output gets a wide table instead of Rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True)


class Group(click.Group):
    """Every failure as one line: user errors (LoragError, files, cache, decoding, bad options) exit 2,
    anything else exits 1 as "internal"; ``--debug`` (or LORAG_DEBUG=1) adds the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except click.exceptions.ClickException as e:  # a bad option or argument: one line, not click's usage block
            sub = getattr(e, "ctx", None)
            path = " ".join(sub.command_path.split()[1:]) if sub is not None else ""  # "train cls", not "cls"
            hint = f" (lorag {path} --help)" if sub is not None and sub is not ctx else ""
            err.print(Text("error: ", style="bold red") + Text(e.format_message() + hint), soft_wrap=True)
            sys.exit(e.exit_code)
        except Exception as e:  # noqa: BLE001 - the one place every failure is reported
            from .cli_errors import describe

            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()
            message, code = describe(e)
            err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
            sys.exit(code)


@click.group(cls=Group)
@click.version_option(package_name="lorag-harness")
@click.option("--debug", is_flag=True, envvar="LORAG_DEBUG", help="Show tracebacks [env LORAG_DEBUG=1]")
def cli(debug):
    """Evaluate RAG relevance graders: LM, LoRA adapters, embeddings."""


@cli.command()
def plugins():
    """List graders, tasks and datasets, and the plugin that registered each."""
    origins = plugin_origins(pm)
    for kind, entries in (("graders", registry.graders()), ("tasks", registry.tasks()), ("datasets", registry.datasets())):
        table = Table(title=kind, title_justify="left", header_style="bold")
        for col in ("name", "description", "plugin", "from"):
            table.add_column(col)
        for e in entries.values():
            table.add_row(e.name, e.description, e.plugin, origins.get(e.plugin, "built-in"))
        console.print(table)


# options of the openai:MODEL judge (graders/openai_judge.py); the API key only from the environment
judge_options = [
    click.option("--judge-base-url", default=None, help="openai: judges: base URL [env OPENAI_BASE_URL, else api.openai.com]"),
    click.option("--judge-api-key-env", default="OPENAI_API_KEY", show_default=True,
                 help="openai: judges: environment variable holding the API key (never passed on the command line)"),
    click.option("--judge-style", type=click.Choice(["json", "umbrela"]), default="json", show_default=True,
                 help="openai: judges: our JSON schema, or an UMBRELA 0-3 grade (openai:MODEL@umbrela sets it per grader)"),
    click.option("--judge-threshold", type=float, default=None,
                 help="openai: judges: umbrela grade counted relevant [2]; json: P(true) cut [the judge's own answer]"),
    click.option("--judge-concurrency", type=click.IntRange(1, 256), default=4, show_default=True),
    click.option("--judge-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="Seconds per request"),
    click.option("--judge-retries", type=click.IntRange(0, 20), default=3, show_default=True,
                 help="Retries on 429/5xx/timeouts/connection errors (exponential backoff, Retry-After honoured)"),
    click.option("--judge-max-tokens", type=click.IntRange(1, 8192), default=None, help="openai: judges: max_tokens per reply"),
]


def judge_config(o: dict) -> dict:
    return {k: o[k] for k in ("judge_base_url", "judge_api_key_env", "judge_style", "judge_threshold",
                              "judge_concurrency", "judge_timeout", "judge_retries", "judge_max_tokens") if k in o}


def _first_stage_option(ctx, param, value):
    if value is None or value in ("bm25", "dense") or (value.startswith("run:") and len(value) > 4):
        return value
    raise click.BadParameter(f"{value!r} is not bm25, dense or run:FILE", ctx, param)


def bench_options(f):
    opts = [
        click.option("--graders", "-g", default="base,embedding", show_default=True, help="Comma-separated grader specs, e.g. base,s1:adapters/s1"),
        click.option("--tasks", "-t", default=None,
                     help="Comma-separated tasks [default: s1-relevance,s2-reasoning,rag-p5, skipping, with a notice, "
                          "those the dataset cannot feed]"),
        click.option("--dataset", "-d", default="reuters-r8", show_default=True, help="Dataset spec, e.g. jsonl:pairs.jsonl"),
        click.option("--base-model", default=None, help="HF model id or path (default: packaged SmolLM2-135M-Instruct)"),
        click.option("--embedder", default=None, help="sentence-transformers model (default: packaged all-MiniLM-L6-v2)"),
        click.option("--eval-pairs", type=click.IntRange(min=2), default=200, show_default=True),
        click.option("--train-pairs", type=click.IntRange(min=1), default=400, show_default=True),
        click.option("--s2-pairs", type=click.IntRange(min=1), default=32, show_default=True, help="Pairs for which reasons are generated"),
        click.option("--rag-queries", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--rag-k", type=click.IntRange(min=5), default=20, show_default=True),
        click.option("--corpus-size", type=click.IntRange(min=1), default=300, show_default=True),
        click.option("--seed", type=int, default=13, show_default=True),
        click.option("--split", type=click.Choice(["train", "dev", "test"]), default=None,
                     help="beir:DIR, hf:NAME: the qrels split to evaluate on [default: test]"),
        click.option("--first-stage", default=None, callback=_first_stage_option,
                     help="rerank, judge-agreement: the first-stage retriever, bm25 or dense [default: bm25]; "
                          "rerank: also run:FILE, a TREC run file from any retriever"),
        click.option("--rerank-k", type=click.IntRange(min=1), default=None,
                     help="rerank: candidates per query from the first stage [default: 100]; judge-agreement: 20"),
        click.option("--rerank-queries", type=click.IntRange(min=1), default=None,
                     help="rerank, judge-agreement: evaluate only the first N judged queries [default: all]"),
        click.option("--positive-rate", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True,
                     help="Share of relevant pairs built from labelled documents (the Lightweight Relevance Grader paper: 0.123)"),
        click.option("--calibrate", type=click.Choice(["isotonic", "platt"]), default=None,
                     help="s1-relevance: map each grader's scores to P(relevant), fitted on the training pairs only "
                          "(monotone increasing); adds brier_cal and ece_cal"),
        click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Rows per generation batch (LM graders score true/false in batches of at least 32)"),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=160, show_default=True),
        click.option("--quant", type=click.Choice(["none", "nf4", "bf16"]), default="none", show_default=True,
                     help="LM graders: nf4 weights, or bf16 matmuls (about 2x faster on AVX512-BF16 CPUs, less exact)"),
        click.option("--cache", "cache_path", default=None, help="Judgment cache file (default: in the cache folder)"),
        click.option("--no-cache", is_flag=True, help="Do not reuse or store judgments"),
        click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the report here"),
        click.option("--format", "fmt", type=click.Choice(["json", "markdown", "html"]), default=None, help="Report format (default: from --out suffix)"),
        *judge_options,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def given(o: dict, name: str):
    """An option's value when the user gave it, else None: the dataset's own default applies (the
    packaged builders default to the CLI's shown values; a jsonl file keeps all its pairs)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
        return None
    return o[name]


def config_from(o: dict):
    from .bench_run import DEFAULT_TASKS
    from .runner import BenchConfig

    graders = [g.strip() for g in o["graders"].split(",") if g.strip()]
    tasks = [t.strip() for t in (o["tasks"] or "").split(",") if t.strip()]
    if not graders:
        raise LoragError("--graders names no grader")
    if o["tasks"] is not None and not tasks:
        raise LoragError("--tasks names no task")
    if (o["first_stage"] or "").startswith("run:") and "judge-agreement" in tasks:
        raise LoragError(f"--first-stage {o['first_stage']}: a run file feeds the rerank task only, not judge-agreement")
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
                      "rerank": {"k": o["rerank_k"], "first_stage": o["first_stage"], "n_queries": o["rerank_queries"]},
                      "judge-agreement": {"k": o["rerank_k"], "first_stage": o["first_stage"],
                                          "n_queries": o["rerank_queries"]}},
        base_model=o["base_model"], embedder=o["embedder"], batch_size=o["batch_size"],
        max_doc_tokens=o["max_doc_tokens"], quant=None if o["quant"] == "none" else o["quant"],
        cache_path=":memory:" if o["no_cache"] else o["cache_path"],
        grader_options=judge_config(o),
    )


def run_and_report(config, out: str | None, fmt: str | None, dataset=None, save_runs: str | None = None):
    from .bench_run import run_and_report as run

    return run(config, out, fmt, dataset=dataset, pm=pm, console=console, err=err, save_runs=save_runs)


@cli.command()
@bench_options
@click.option("--save-runs", type=click.Path(file_okay=False), default=None,
              help="rerank: write the first stage's run, one TREC run file per grader and the evaluated qrels here")
def bench(save_runs, **o):
    """Run graders × tasks on a dataset and print a comparison table."""
    config = config_from(o)
    if save_runs and "rerank" not in config.tasks:
        raise LoragError(f"--save-runs {save_runs}: only the rerank task makes runs: add -t rerank")
    run_and_report(config, o["out"], o["fmt"], save_runs=save_runs)


@cli.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--base-model", default=None, help="For LM graders (default: packaged SmolLM2-135M-Instruct)")
@click.option("--embedder", default=None, help="For embedding graders (default: packaged all-MiniLM-L6-v2)")
@click.option("--dataset", "-d", default=None, help="Dataset whose training pairs calibrating graders see, e.g. reuters-r8")
@click.option("--train-pairs", type=click.IntRange(min=1), default=40, show_default=True, help="With --dataset")
@click.option("--no-reasons", is_flag=True, help="Do not ask for reasons")
@click.option("--nondeterministic", is_flag=True, help="Decisions may change between calls (e.g. a sampled API)")
def check(specs, base_model, embedder, dataset, train_pairs, no_reasons, nondeterministic):
    """Check grader plug-ins against the grader contract (a plug-in author's checker).

    Builds each GRADER_SPEC (e.g. mine:arg) through the registry and grades six small labelled pairs:
    output count, order and types, advance() totals, reasons, an empty batch, fingerprint stability."""
    from .runner import build_grader, load_dataset
    from .testing import contract_problems

    ds = load_dataset(dataset, {"n_train": train_pairs, "n_eval": 2}, pm) if dataset else None
    context = registry.GraderContext(base_model, embedder, ds)
    failed = 0
    for spec in specs:
        registry.lookup(registry.graders(pm), spec, "grader")
    for spec in specs:
        problems = contract_problems(build_grader(spec, context, pm), reasons=not no_reasons,
                                     deterministic=not nondeterministic)
        for problem in problems:
            console.print(f"{spec}: {problem}", soft_wrap=True, markup=False)
        if not problems:
            console.print(f"{spec}: ok")
        failed += bool(problems)
    if failed:
        sys.exit(1)


@cli.group()
def cache():
    """The judgment cache."""


@cache.command("clear")
@click.option("--cache", "cache_path", default=None, help="Cache file (default: in the cache folder)")
def cache_clear(cache_path):
    """Delete every stored judgment. A damaged file is moved aside (<file>.corrupt-<time>) and a fresh
    cache started."""
    from .cache import CacheError, JudgmentCache, set_aside

    try:
        store = JudgmentCache(cache_path)
    except CacheError as e:
        if e.kind != "damaged":
            raise
        moved = set_aside(e.path)
        store = JudgmentCache(e.path)
        console.print(f"{e.path} was damaged ({e.problem}): moved it to {moved} and started a fresh cache", soft_wrap=True)
        store.close()
        return
    try:
        console.print(f"removed {store.clear()} judgments from {store.path}")
    finally:
        store.close()


@cache.command("info")
@click.option("--cache", "cache_path", default=None, help="Cache file (default: in the cache folder)")
def cache_info(cache_path):
    """How many judgments are stored (read-only: works on a read-only file or folder)."""
    from .cache import JudgmentCache, default_path

    path = Path(cache_path) if cache_path else default_path()
    if not path.exists():
        console.print(json.dumps({"path": str(path), "judgments": 0, "exists": False}))
        return
    store = JudgmentCache(path, readonly=True)
    try:
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        console.print(json.dumps({"path": store.path, "judgments": store.count(), "writable": writable}))
    finally:
        store.close()


pm.hook.register_commands(cli=cli)


def main():  # console script
    cli()
