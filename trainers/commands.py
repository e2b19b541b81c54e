"""CLI commands of the trainers plugin: train, merge, demo."""
from __future__ import annotations


import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl

from .profiles import PROFILES

err = Console(stderr=True)


def train_with_progress(cfg, dataset) -> dict:
    from .train import train

    columns = (TextColumn("train {task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err) as progress:
        bar = progress.add_task("train", total=None, stage=cfg.stage, loss=float("nan"))
        manifest = train(cfg, dataset, lambda step, total, loss: progress.update(bar, completed=step, total=total, loss=loss))
    m = manifest["metrics"]
    err.print(f"{cfg.stage}: loss {m['first_loss']:.3f} → {m['final_loss']:.3f} in {m['seconds']:.0f} s "
              f"({m['steps_per_s']:.3f} steps/s, {m['examples_per_s']:.2f} examples/s) → {cfg.out}")
    if c := manifest.get("calibration"):
        err.print(f"{cfg.stage}: P(true) threshold {c['threshold']:.3f} on {c['pairs']} training pairs "
                  f"(AUC {c['auc']:.3f}, balanced accuracy {c['balanced_accuracy']:.3f})")
    return manifest


def train_options(f):
    opts = [
        click.option("--dataset", "-d", default="reuters-r8", show_default=True),
        click.option("--train-pairs", type=click.IntRange(min=1), default=1600, show_default=True),
        click.option("--seed", type=int, default=13, show_default=True),
        click.option("--positive-rate", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True,
                     help="Share of relevant pairs the pair builder makes (0.123 in the Lightweight Relevance Grader paper)"),
        click.option("--base-model", default=None, help="HF model id or path (default: packaged SmolLM2)"),
        click.option("--from", "init_adapter", default=None, help="Adapter to start from (stage s2: the S1 adapter)"),
        click.option("--out", required=True, help="Adapter folder to write"),
        click.option("--loss", type=click.Choice(["masked", "full", "weighted"]), default="masked", show_default=True),
        click.option("--weight", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True, help="With --loss weighted"),
        click.option("--quant", type=click.Choice(["auto", "nf4", "none"]), default="auto", show_default=True,
                     help="auto: nf4 on CUDA, plain LoRA on CPU"),
        click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None, help="Preset hyper-parameters"),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: one epoch"),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--batch-size", type=click.IntRange(min=1), default=None),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--r", "r", type=click.IntRange(min=1), default=None),
        click.option("--alpha", type=click.IntRange(min=1), default=None),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=None),
        click.option("--balance", type=click.Choice(["none", "over", "under"]), default=None),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=None,
                     help="Training pairs the P(true) threshold is fitted on after training [256; 0: keep 0.5]"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def make_config(stage: str, o: dict):
    from .train import TrainConfig

    values = dict(PROFILES[o["profile"]][stage]) if o.get("profile") else {}
    for key in ("steps", "epochs", "batch_size", "lr", "r", "alpha", "dropout", "max_doc_tokens", "balance",
                "calibration_pairs"):
        if o.get(key) is not None:
            values[key] = o[key]
    return TrainConfig(stage=stage, out=o["out"], base_model=o["base_model"], init_adapter=o["init_adapter"],
                       loss=o["loss"], weight=o["weight"], quant=o["quant"], seed=o["seed"], **values)


@hookimpl
def register_commands(cli):
    from lorag_harness.runner import load_dataset

    @cli.command()
    @click.argument("stage", type=click.Choice(["s1", "s2"]))
    @train_options
    def train(stage, **o):
        """Train the S1 adapter (loss on the relevant value) or S2 (from S1, loss on the reason)."""
        if stage == "s2" and not o["init_adapter"]:
            raise LoragError("stage s2 starts from the S1 adapter: lorag train s2 --from adapters/s1 --out adapters/s2")
        dataset = load_dataset(o["dataset"], {"n_train": o["train_pairs"], "seed": o["seed"],
                                                  "positive_rate": o["positive_rate"]})
        train_with_progress(make_config(stage, o), dataset)

    @cli.command()
    @click.argument("adapter", type=click.Path(exists=True, file_okay=False))
    @click.option("--out", required=True, help="Folder for the merged model")
    @click.option("--base-model", default=None, help="Default: the base model named in the adapter's manifest")
    def merge(adapter, out, base_model):
        """Fold an adapter into the base model; write the merged model and its tokenizer."""
        from .train import merge as merge_adapter

        err.print(f"merged model written to {merge_adapter(adapter, out, base_model)}")

    from .demo import demo

    cli.add_command(demo)
