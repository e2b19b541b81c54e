"""The trainers plug-in's commands: ``lorag train s1|s2|reranker|cls|embedding``, ``lorag pairs``, ``lorag merge``,
``lorag demo``.

Only option declarations here: each command imports its trainer (and torch) when it runs, so
``lorag --help`` stays light."""
from __future__ import annotations

import click

from lorag_harness.cli.options import Finite, apply, base_model_option, precision_option
from lorag_harness.errors import LoragError
from lorag_harness.evaluation.preflight import check_base_model, check_output, same_file
from lorag_harness.hookspecs import hookimpl

from .common import BALANCE, LOSSES, MODES, data_options, dataset_for, err, progress_bar, run_with_progress
from .outputs import claim
from .profiles import DEFAULT_PROFILE, PROFILES
from .recipe import RERANKER_ROWS, TEACHER_WINDOW, recipe_dataset, recipe_options

WEAK_EXIT = 3  # `lorag train` exit code for a stage-1 run that did not learn (unless --allow-weak)


def adapter_options(f):
    opts = [
        base_model_option(),
        click.option("--from", "init_adapter", default=None, help="Adapter to start from (stage s2: the S1 adapter)"),
        click.option("--out", required=True, help="Adapter folder to write"),
        click.option("--loss", type=click.Choice(["masked", "full", "weighted"]), default="masked", show_default=True),
        click.option("--weight", type=Finite(min=0, min_open=True), default=5.0, show_default=True, help="With --loss weighted"),
        click.option("--quant", type=click.Choice(["auto", "nf4", "none"]), default="auto", show_default=True,
                     help="auto: nf4 on CUDA, plain LoRA on CPU"),
        click.option("--profile", type=click.Choice(sorted(PROFILES)), default=DEFAULT_PROFILE, show_default=True,
                     help="Preset hyper-parameters (options below override them)"),
        click.option("--steps", type=click.IntRange(min=1), default=None,
                     help="Default: what fits the profile's time budget, at most its epochs (quick s1: 10m, 2 epochs)"),
        click.option("--epochs", type=Finite(min=0, min_open=True), default=None),
        click.option("--batch-size", type=click.IntRange(min=1), default=None),
        click.option("--lr", type=Finite(min=0, min_open=True), default=None),
        click.option("--r", "r", type=click.IntRange(min=1), default=None),
        click.option("--alpha", type=click.IntRange(min=1), default=None),
        click.option("--dropout", type=Finite(0, 1, max_open=True), default=None),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=None),
        click.option("--balance", type=click.Choice(["none", "over", "under"]), default=None),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=None,
                     help="Without a validation slice: training pairs the P(true) threshold is fitted on [256; 0: keep 0.5]"),
        click.option("--time-budget", default=None,
                     help="Wall time for the training loop (90s, 10m, 1.5h): the step count is chosen to fit, "
                          "never above --steps or --epochs [quick s1: 10m; --steps or --epochs alone: no budget]"),
        click.option("--time-budget-max", default=None,
                     help="A budget too small for a useful run on this machine grows up to this (instead of being "
                          "refused); with --target-auc, a run below the target goes on up to it [none]"),
        click.option("--objective", type=click.Choice(["token", "binary"]), default=None,
                     help="Stage s1: cross-entropy over the vocabulary, or over the ' true'/' false' logits only"),
        click.option("--batches", type=click.Choice(["length", "balanced", "document"]), default=None,
                     help="length-sorted, half positive / half negative, or a document's pairs in one batch"),
        precision_option(None),
        click.option("--autocast", type=click.Choice(["none", "bf16"]), default=None, hidden=True,
                     help="Former name: none = --precision fp32, bf16 = --precision bf16"),
        click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Batches per optimiser step"),
        click.option("--val-pairs", type=click.IntRange(min=0), default=None,
                     help="Stage s1: training pairs held out by document for validation [quick profile: 128; 0: none]"),
        click.option("--val-every", type=click.IntRange(min=1), default=None, help="Steps between validations [20]"),
        click.option("--patience", type=click.IntRange(min=0), default=None,
                     help="Validations without improvement before stopping early [4; 0: never]"),
        click.option("--target-auc", type=Finite(0.5, 1, min_open=True, max_open=True), default=None,
                     help="Stage s1: a run whose best validation ROC-AUC is below this at its planned end goes on, "
                          "--val-every steps at a time, up to --time-budget-max and the epochs [none]"),
        click.option("--force", is_flag=True, help="Replace what --out holds (another model, another run, other files)"),
        click.option("--allow-weak", is_flag=True,
                     help=f"Exit 0 even when the run did not learn (default: exit {WEAK_EXIT})"),
    ]
    return apply(data_options(f), opts)


def make_config(stage: str, o: dict):
    from .train import TrainConfig

    from .diagnostics import parse_duration

    profile = o.get("profile") or DEFAULT_PROFILE
    values = dict(PROFILES[profile][stage])
    for key in ("steps", "epochs", "batch_size", "lr", "r", "alpha", "dropout", "max_doc_tokens", "balance",
                "calibration_pairs", "objective", "batches", "precision", "grad_accum", "val_pairs", "val_every",
                "patience", "target_auc"):
        if o.get(key) is not None:
            values[key] = o[key]
    if o.get("autocast") is not None and o.get("precision") is None:
        values["precision"] = {"none": "fp32", "bf16": "bf16"}[o["autocast"]]
    if o.get("time_budget") is not None:
        values["time_budget"] = parse_duration(o["time_budget"])
    elif o.get("steps") is not None or o.get("epochs") is not None:
        values.pop("time_budget", None)  # an explicit count is run in full
    if o.get("time_budget_max") is not None:
        values["time_budget_max"] = parse_duration(o["time_budget_max"], "--time-budget-max")
    if o.get("loss", "masked") != "masked" and o.get("objective") is None:
        values.pop("objective", None)  # the binary objective needs the masked loss; --loss full/weighted: token
    return TrainConfig(stage=stage, out=o["out"], base_model=o["base_model"], init_adapter=o["init_adapter"],
                       loss=o["loss"], weight=o["weight"], quant=o["quant"], seed=o["seed"],
                       force=bool(o.get("force")), **values)


def reranker_options(f):
    opts = [
        click.option("--from", "base_model", default=None,
                     help="HF model id or folder (default: the packaged all-MiniLM-L6-v2 encoder, new head)"),
        click.option("--out", required=True, help="Model folder to write"),
        click.option("--loss", type=click.Choice(LOSSES), default=None,
                     help="bce: labelled pairs; lambda/listnet: listwise over a positive and mined hard negatives "
                          "[bce; with --teacher: margin-mse]"),
        click.option("--teacher", default=None,
                     help="Grader spec (embedding:DIR, openai: judges too): distil its score margins between each "
                          "query's positive and negative (MarginMSE) instead of the labels"),
        click.option("--max-rows", type=click.IntRange(min=2), default=None,
                     help="Training rows: every judged one, then a seeded sample of the others "
                          f"[with --corpus/--pairs/--pairs-from: {RERANKER_ROWS['bce']} pairs, {RERANKER_ROWS['margin-mse']} "
                          "rows with --teacher (about 15 minutes on 2 cores); else all]"),
        click.option("--pos-weight", type=Finite(min=0, min_open=True), default=None, help="bce: weight of positives [negatives/positives]"),
        click.option("--negatives", type=click.IntRange(min=1), default=4, show_default=True, help="Listwise: hard negatives per positive"),
        click.option("--epochs", type=Finite(min=0, min_open=True), default=1.0, show_default=True),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: from --epochs"),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--lr", type=Finite(min=0, min_open=True), default=1e-4, show_default=True),
        click.option("--max-length", type=click.IntRange(min=1), default=128, show_default=True, help="Tokens of query + document"),
        click.option("--lora", is_flag=True, help="Train LoRA adapters (and the head) only; merged when saved"),
        click.option("--r", "r", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--alpha", type=click.IntRange(min=1), default=32, show_default=True),
        precision_option(),
        click.option("--bf16", is_flag=True, hidden=True, help="Same as --precision bf16"),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=512, show_default=True),
        click.option("--embedder", default=None, help="First-stage embedder for hard negatives (default: packaged MiniLM)"),
        click.option("--force", is_flag=True, help="Replace what --out holds (another model, another run, other files)"),
    ]
    return apply(data_options(f), opts)


def cls_options(f):
    opts = [
        base_model_option(),
        click.option("--out", required=True, help="Folder to write (grade with -g cls:OUT)"),
        click.option("--mode", type=click.Choice(MODES), default="lora", show_default=True,
                     help="lora: adapters + head; full: all weights; head: frozen backbone"),
        click.option("--balance", type=click.Choice(BALANCE), default="none", show_default=True,
                     help="over: repeat positives; under: drop negatives; both: meet half-way"),
        click.option("--class-weight/--no-class-weight", default=True, show_default=True,
                     help="Weighted cross-entropy (weights from the class counts after balancing)"),
        click.option("--epochs", type=Finite(min=0, min_open=True), default=1.0, show_default=True),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: from --epochs"),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--lr", type=Finite(min=0, min_open=True), default=None, help="Default by mode: lora 3e-4, full 3e-5, head 1e-3"),
        click.option("--r", "r", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--alpha", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=64, show_default=True),
        precision_option(),
        click.option("--bf16/--no-bf16", default=None, hidden=True, help="Same as --precision bf16 / fp32"),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=512, show_default=True),
        click.option("--force", is_flag=True, help="Replace what --out holds (another model, another run, other files)"),
    ]
    return apply(data_options(f), opts)


@click.group("train")
def train():
    """Train an adapter (s1, s2), a reranker or a classification head."""


def _adapter_command(stage: str, doc: str):
    @train.command(stage, help=doc)
    @adapter_options
    def command(**o):
        from .progress import train_with_progress

        if stage == "s2" and not o["init_adapter"]:
            raise LoragError("stage s2 starts from the S1 adapter: lorag train s2 --from adapters/s1 --out adapters/s2")
        cfg = make_config(stage, o)  # option errors before the data and the model load
        claim(cfg.out, f"{stage}-adapter", None, cfg.force)  # --out before the data (its run key: in train)
        manifest = train_with_progress(cfg, dataset_for(o))
        if manifest.get("weak") and not o["allow_weak"]:
            err.print(f"exit {WEAK_EXIT}: weak adapter (pass --allow-weak to accept it)")
            raise SystemExit(WEAK_EXIT)


_adapter_command("s1", "Train the S1 adapter: LoRA with the loss on the relevant value only.")
_adapter_command("s2", "Train S2 from S1 (--from): LoRA with the loss on the reason only.")


@train.command("reranker")
@reranker_options
@recipe_options
def reranker(**o):
    """Train a cross-encoder reranker (grade with -g cross-encoder:OUT)."""
    from .rerank_train import DISTIL, RerankConfig, train_reranker
    from .teacher import check_teacher

    recipe = bool(o["corpus"] or o["pairs"] or o["pairs_from"])
    loss = o["loss"] or (DISTIL if o["teacher"] else "bce")
    max_rows = o["max_rows"] or (RERANKER_ROWS.get(loss) if recipe else None)
    cfg = RerankConfig(out=o["out"], base_model=o["base_model"], loss=loss, pos_weight=o["pos_weight"],
                       negatives=o["negatives"], epochs=o["epochs"], steps=o["steps"], batch_size=o["batch_size"],
                       lr=o["lr"], max_length=o["max_length"], lora=o["lora"], r=o["r"], alpha=o["alpha"],
                       precision="bf16" if o["bf16"] else o["precision"], calibration_pairs=o["calibration_pairs"],
                       teacher=o["teacher"], max_rows=max_rows, seed=o["seed"], force=o["force"])
    cfg.check()
    if cfg.teacher:
        check_teacher(cfg.teacher)
    claim(cfg.out, "cross-encoder", None, cfg.force)  # before the data (the run's key: in train_reranker)
    if recipe:
        source = click.get_current_context().get_parameter_source("dataset")
        if source == click.core.ParameterSource.DEFAULT and (o["corpus"] or o["pairs"]):
            o = {**o, "dataset": None}  # the --corpus collection (beir:) is the dataset
        dataset, _ = recipe_dataset(o, dataset_for, window=TEACHER_WINDOW if cfg.teacher else None)
    else:
        dataset = dataset_for(o)
    run_with_progress(train_reranker, cfg, dataset, "reranker", embedder=o["embedder"])


@train.command("cls")
@cls_options
def cls(**o):
    """Train a decoder with a 2-class head (grade with -g cls:OUT)."""
    from .cls_train import ClsConfig, train_cls

    cfg = ClsConfig(**{k: o[k] for k in ("out", "base_model", "mode", "balance", "class_weight", "epochs", "steps",
                                          "batch_size", "lr", "r", "alpha", "max_doc_tokens", "calibration_pairs",
                                          "seed", "force")},
                    precision=o["precision"] if o["bf16"] is None else ("bf16" if o["bf16"] else "fp32"))
    cfg.check()
    claim(cfg.out, "cls", None, cfg.force)  # before the data (the run's key: in train_cls)
    run_with_progress(train_cls, cfg, dataset_for(o), f"cls ({cfg.mode}, balance {cfg.balance})")


@train.command("embedding")
@click.option("--dataset", "-d", default=None, help="Dataset whose training judgments --pairs-from qrels|both uses "
                                                      "[the --corpus beir: collection]")
@recipe_options
@click.option("--train-pairs", type=click.IntRange(min=1), default=None, help="At most this many judged training pairs")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--from", "base_model", default=None, help="sentence-transformers model id or folder [packaged MiniLM]")
@click.option("--out", required=True, help="Model folder to write")
@click.option("--epochs", type=Finite(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: from --epochs")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--lr", type=Finite(min=0, min_open=True), default=2e-5, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True,
              help="Tokens per text while training (grading keeps the model's own length)")
@click.option("--no-negatives", is_flag=True, help="In-batch negatives only")
@click.option("--teacher", default=None,
              help="Grader spec (openai: judges too): distil its score margins (MarginMSE) instead of the labels")
@click.option("--max-rows", type=click.IntRange(min=2), default=1536, show_default=True,
              help="Training rows: every judged one, then a seeded sample of the synthetic ones")
@click.option("--tuned-share", type=Finite(min=0, max=1, min_open=True), default=1.0, show_default=True,
              help="The fine-tuned weights' share in the saved model, the rest the base model's (WiSE-FT weight "
                   "averaging); 1 saves them as trained")
@click.option("--force", is_flag=True, help="Replace what --out holds (another model, another run, other files)")
def embedding(**o):
    """Fine-tune the embedder on in-domain pairs (grade with -g embedding:OUT)."""
    from .embedding_train import EmbeddingConfig, train_embedding

    cfg = EmbeddingConfig(out=o["out"], base_model=o["base_model"], epochs=o["epochs"], steps=o["steps"],
                          batch_size=o["batch_size"], lr=o["lr"], max_length=o["max_length"],
                          negatives=not o["no_negatives"], max_rows=o["max_rows"], teacher=o["teacher"],
                          tuned_share=o["tuned_share"], seed=o["seed"], force=o["force"])
    cfg.check()
    if cfg.teacher:
        from .teacher import check_teacher

        check_teacher(cfg.teacher)
    claim(cfg.out, "embedding", None, o["force"])
    if o["dataset"] is None and o["corpus"] is None and o["pairs"] is None:
        raise LoragError("lorag train embedding needs --corpus SPEC, --pairs FILE or -d DATASET")
    o = {**o, "train_pairs": o["train_pairs"] or 10**9, "positive_rate": 0.5}
    dataset, _ = recipe_dataset(o, dataset_for)
    with progress_bar() as bar:
        task = bar.add_task("train embedding", total=None, loss=float("nan"))
        manifest = train_embedding(cfg, dataset, lambda s, t, l: bar.update(task, completed=s, total=t, loss=l))
    m = manifest["metrics"]
    err.print(f"embedding: loss {m['first_loss']:.3f} → {m['final_loss']:.3f} in {m['seconds']:.0f} s "
                               f"({m['steps']} steps, {m['rows']} rows) → {manifest['out']}")


def parse_window(text: str) -> tuple[int, int]:
    """``30-100`` (1-based ranks, inclusive) -> (29, 100), the 0-based window ``negatives.draw`` takes."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise LoragError(f"--window must be LO-HI (ranks, e.g. 31-100), not {text!r}") from None
    if not 1 <= lo <= hi:
        raise LoragError(f"--window must be LO-HI with 1 <= LO <= HI, not {text!r}")
    return lo - 1, hi


@click.command()
@click.argument("corpus")
@click.option("--out", required=True, help="Pairs file to write (JSON lines; resumed if it exists)")
@click.option("--queries", "kinds", default="title,ict", show_default=True,
              help="Pseudo-queries: title, ict (inverse cloze), generate (an LM writes them), comma-separated")
@click.option("--negatives", type=click.IntRange(min=0), default=1, show_default=True, help="Negatives per pseudo-query")
@click.option("--window", default="31-100", show_default=True,
              help="BM25 ranks the negatives are drawn from (never the top ones: they may be relevant)")
@click.option("--generator", default=None, help="generate: HF model id or folder [the base LM]")
@click.option("--round-trip-k", type=click.IntRange(min=1), default=20, show_default=True,
              help="generate: keep a query only if BM25 ranks its passage in this top k")
@click.option("--max-docs", type=click.IntRange(min=1), default=None, help="A seeded sample of the passages")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--overwrite", is_flag=True, help="Start again instead of resuming an existing --out")
def pairs(corpus, out, kinds, negatives, window, generator, round_trip_k, max_docs, seed, overwrite):
    """Training pairs from CORPUS (beir:DIR, jsonl:DIR|FILE, a .jsonl corpus or a text file, one passage a line)."""
    import random
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from lorag_harness.progress import progress as heartbeat_progress

    from lorag_harness.data.synthetic import NEEDS, PairOptions, QueryWriter, corpus_file, read_passages, write_pairs

    opts = PairOptions(kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), negatives=negatives,
                       window=parse_window(window), round_trip_k=round_trip_k, seed=seed, generator=generator)
    opts.check()
    target = Path(out)
    if target.is_dir():
        raise LoragError(f"--out {out}: is a folder, not a file")
    read = corpus_file(corpus)[1]
    for written in (target, target.with_name(target.name + ".meta.json")):  # the pairs and their .meta.json
        if same_file(written, read):
            raise LoragError(f"--out {out}: would write over the corpus being read ({read}); choose another --out")
    check_output(out, "--out")  # writable, before the corpus is read
    if "generate" in opts.kinds:  # the query writer's model, before the corpus is read
        check_base_model(generator, "--generator")
    passages = read_passages(corpus)
    only = None
    if max_docs and max_docs < len(passages):
        only = {passages[i].doc_id for i in random.Random(seed).sample(range(len(passages)), max_docs)}
    writer = QueryWriter(generator) if "generate" in opts.kinds else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with heartbeat_progress(*columns, console=err) as progress:
        task = progress.add_task("pairs", total=len(only) if only else len(passages))
        counts = write_pairs(passages, target, opts, resume=not overwrite, writer=writer, only=only,
                             progress=lambda i, n: progress.update(task, completed=i))
    skipped = counts["without_pairs"]
    needs = "; ".join(NEEDS[k] for k in opts.kinds)
    if counts["positives"] == 0 and not target.stat().st_size:  # an empty file is not kept as a result
        target.unlink()
        target.with_name(target.name + ".meta.json").unlink(missing_ok=True)
        raise LoragError(f"{corpus}: no pairs from its {counts['documents']} passages: {needs}")
    err.print(f"pairs: {counts['positives']} positive and {counts['negatives']} negative pairs from "
              f"{counts['documents'] - skipped} passages" + (f" ({skipped} gave none: {needs})" if skipped else "")
              + (f" ({counts['resumed']} done before, resumed)" if counts["resumed"] else "") + f" → {target}")


@click.command()
@click.argument("adapter", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, help="Folder for the merged model")
@base_model_option(help="Default: the base model named in the adapter's manifest")
@click.option("--force", is_flag=True, help="Replace what --out holds (another model, other files)")
@click.option("--gguf", "gguf_out", default=None, type=click.Path(dir_okay=False),
              help="Also write the merged LM as GGUF (llama.cpp, Ollama), with a Modelfile and the answer's JSON schema")
@click.option("--quant", type=click.Choice(["f16", "q8_0"]), default="f16", show_default=True, help="With --gguf")
def merge(adapter, out, base_model, force, gguf_out, quant):
    """Fold an adapter into the base model; write the merged model and its tokenizer (--out) and/or a
    GGUF file (--gguf)."""
    from .train import merge as merge_adapter

    if not out and not gguf_out:
        raise LoragError("lorag merge: pass --out DIR (an HF model folder) and/or --gguf FILE.gguf")
    if gguf_out:
        if not gguf_out.endswith(".gguf"):
            raise LoragError(f"--gguf {gguf_out}: name the file .gguf")
        check_output(gguf_out, "--gguf")
    model = None
    if out:
        err.print(f"merged model written to {merge_adapter(adapter, out, base_model, force)}")
    if gguf_out:
        from lorag_harness.backends import lm
        from lorag_harness.backends.gguf_export import export_adapter

        if out:
            model = lm.load_model(out)
        info = export_adapter(adapter, gguf_out, quant, base_model, model=model)
        err.print(f"GGUF ({quant}) written to {info['gguf']}; Ollama: {info['modelfile']} "
                  f"(ollama create NAME -f {info['modelfile']}), answer schema {info['schema']}")


@hookimpl
def register_commands(cli):
    from .demo import demo

    for command in (train, merge, demo, pairs):
        cli.add_command(command)
