"""CLI commands of the trainers plugin: train, merge, demo."""
from __future__ import annotations


import click
from rich.console import Console

from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl

from .profiles import DEFAULT_PROFILE, PROFILES
from .progress import train_with_progress

err = Console(stderr=True)


WEAK_EXIT = 3  # `lorag train` exit code for a stage-1 run that did not learn (unless --allow-weak)


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
        click.option("--profile", type=click.Choice(sorted(PROFILES)), default=DEFAULT_PROFILE, show_default=True,
                     help="Preset hyper-parameters (options below override them)"),
        click.option("--steps", type=click.IntRange(min=1), default=None,
                     help="Default: what fits the profile's time budget, at most its epochs (quick s1: 10m, 2 epochs)"),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--batch-size", type=click.IntRange(min=1), default=None),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--r", "r", type=click.IntRange(min=1), default=None),
        click.option("--alpha", type=click.IntRange(min=1), default=None),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=None),
        click.option("--balance", type=click.Choice(["none", "over", "under"]), default=None),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=None,
                     help="Without a validation slice: training pairs the P(true) threshold is fitted on [256; 0: keep 0.5]"),
        click.option("--time-budget", default=None,
                     help="Wall time for the training loop (90s, 10m, 1.5h): the step count is chosen to fit, "
                          "never above --steps or --epochs [quick s1: 10m; --steps or --epochs alone: no budget]"),
        click.option("--objective", type=click.Choice(["token", "binary"]), default=None,
                     help="Stage s1: cross-entropy over the vocabulary, or over the ' true'/' false' logits only"),
        click.option("--batches", type=click.Choice(["length", "balanced", "document"]), default=None,
                     help="length-sorted, half positive / half negative, or a document's pairs in one batch"),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
                     help="bfloat16 autocast or float32 [auto: bf16 where a matmul probe measured it faster here]"),
        click.option("--autocast", type=click.Choice(["none", "bf16"]), default=None, hidden=True,
                     help="Former name: none = --precision fp32, bf16 = --precision bf16"),
        click.option("--grad-accum", type=int, default=None, help="Batches per optimiser step"),
        click.option("--val-pairs", type=int, default=None,
                     help="Stage s1: training pairs held out by document for validation [quick profile: 128; 0: none]"),
        click.option("--val-every", type=int, default=None, help="Steps between validations [20]"),
        click.option("--patience", type=int, default=None,
                     help="Validations without improvement before stopping early [4; 0: never]"),
        click.option("--allow-weak", is_flag=True,
                     help=f"Exit 0 even when the run did not learn (default: exit {WEAK_EXIT})"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def make_config(stage: str, o: dict):
    from .train import TrainConfig

    from .diagnostics import parse_duration

    profile = o.get("profile") or DEFAULT_PROFILE
    values = dict(PROFILES[profile][stage])
    for key in ("steps", "epochs", "batch_size", "lr", "r", "alpha", "dropout", "max_doc_tokens", "balance",
                "calibration_pairs", "objective", "batches", "precision", "grad_accum", "val_pairs", "val_every",
                "patience"):
        if o.get(key) is not None:
            values[key] = o[key]
    if o.get("autocast") is not None and o.get("precision") is None:
        values["precision"] = {"none": "fp32", "bf16": "bf16"}[o["autocast"]]
    if o.get("time_budget") is not None:
        values["time_budget"] = parse_duration(o["time_budget"])
    elif o.get("steps") is not None or o.get("epochs") is not None:
        values.pop("time_budget", None)  # an explicit count is run in full
    if o.get("loss", "masked") != "masked" and o.get("objective") is None:
        values.pop("objective", None)  # the binary objective needs the masked loss; --loss full/weighted: token
    return TrainConfig(stage=stage, out=o["out"], base_model=o["base_model"], init_adapter=o["init_adapter"],
                       loss=o["loss"], weight=o["weight"], quant=o["quant"], seed=o["seed"], **values)


@hookimpl
def register_commands(cli):
    from .rerank_train import dataset_for

    @cli.command()
    @click.argument("stage", type=click.Choice(["s1", "s2"]))
    @train_options
    def train(stage, **o):
        """Train the S1 adapter (loss on the relevant value) or S2 (from S1, loss on the reason)."""
        if stage == "s2" and not o["init_adapter"]:
            raise LoragError("stage s2 starts from the S1 adapter: lorag train s2 --from adapters/s1 --out adapters/s2")
        cfg = make_config(stage, o)  # option errors before the data and the model load
        dataset = dataset_for(o)
        manifest = train_with_progress(cfg, dataset)
        if manifest.get("weak") and not o["allow_weak"]:
            err.print(f"exit {WEAK_EXIT}: weak adapter (pass --allow-weak to accept it)")
            raise SystemExit(WEAK_EXIT)

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
