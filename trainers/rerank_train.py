"""``lorag train reranker``: a sentence-transformers cross-encoder trained with ``CrossEncoderTrainer``.

Losses: ``bce`` (BinaryCrossEntropyLoss, positives weighted by the class ratio) over the labelled
training pairs, or a listwise loss (``lambda``: LambdaLoss, ``listnet``: ListNetLoss) over one
positive and hard negatives mined with the first-stage embedder from the training documents.
The folder gets the model, and a manifest.json with the base model, data hash, hyper-parameters,
metrics and the relevance threshold calibrated on training pairs."""
from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag_harness.errors import LoragError
from lorag_harness.lm import quiet_transformers
from lorag_harness.hookspecs import hookimpl
from lorag_harness.model import Pair, pairs_hash

from .calibrate import youden_threshold

err = Console(stderr=True)
LOSSES = ("bce", "lambda", "listnet")


def check_positive(cfg, names) -> None:
    """Refuse a count below 1 in a trainer config, naming its option."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise LoragError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(cfg, name)}")


@dataclass
class RerankConfig:
    out: str
    base_model: str | None = None  # None: the packaged all-MiniLM-L6-v2 encoder with a new 1-logit head
    loss: str = "bce"
    pos_weight: float | None = None  # bce; None: negatives / positives on the training pairs
    negatives: int = 4  # listwise: hard negatives per positive
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.1
    max_length: int = 128
    lora: bool = False
    r: int = 16
    alpha: int = 32
    bf16: bool = False
    calibration_pairs: int = 512
    seed: int = 13

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise LoragError(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        check_positive(self, ("batch_size", "max_length", "negatives", "r", "alpha"))
        if self.steps is not None and self.steps < 1:
            raise LoragError(f"--steps must be >= 1, not {self.steps}")
        if self.epochs <= 0 or self.lr <= 0 or not 0 <= self.warmup < 1:
            raise LoragError("--epochs and --lr must be > 0 and --warmup in [0, 1)")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise LoragError(f"--pos-weight must be > 0, not {self.pos_weight}")
        if self.calibration_pairs < 0:
            raise LoragError("--calibration-pairs must be >= 0")


# ---- shared with lorag train cls ----------------------------------------------------------------

def config_key(cfg, pairs) -> str:
    """Everything a trained model depends on: hyper-parameters and the labelled training pairs."""
    blob = json.dumps({"config": {k: v for k, v in asdict(cfg).items() if k != "out"}, "data": pairs_hash(pairs)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_current(cfg, pairs) -> bool:
    path = Path(cfg.out) / "manifest.json"
    try:
        return json.loads(path.read_text()).get("key") == config_key(cfg, pairs)
    except (OSError, ValueError):
        return False


def check_training_pairs(pairs: list[Pair], what: str) -> None:
    labels = {p.label for p in pairs}
    if len(pairs) < 2 or len(labels) < 2:
        raise LoragError(f"{what} needs training pairs of both classes (got {len(pairs)} pairs, "
                         f"labels {sorted(labels)}): raise --train-pairs or check the dataset")


def check_out(out: str) -> Path:
    """The output folder, writable, checked before training starts."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise LoragError(f"--out {out}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise LoragError(f"--out {out}: not writable ({e.strerror or e})") from None
    return path


def calibration_sample(pairs: list[Pair], n: int, seed: int) -> list[Pair]:
    return random.Random(seed).sample(pairs, min(n, len(pairs)))


def calibration(labels: list[bool], scores) -> dict:
    """Youden threshold on training-pair scores, with the AUC and balanced accuracy there."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    scores = np.asarray(scores, dtype=float)
    cut = youden_threshold(labels, scores)
    return {"pairs": len(labels), "threshold": cut, "auc": float(roc_auc_score(labels, scores)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, scores >= cut)),
            "positive_rate": float(np.mean(labels))}


def write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out / "manifest.json")


def progress_bar():
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err)


def print_summary(what: str, manifest: dict) -> None:
    m, c = manifest["metrics"], manifest.get("calibration") or {}
    err.print(f"{what}: loss {m['first_loss']:.3f} → {m['final_loss']:.3f} in {m['seconds']:.0f} s "
              f"({m['steps']} steps) → {manifest['out']}")
    if c:
        err.print(f"{what}: threshold {c['threshold']:.3f} on {c['pairs']} training pairs "
                  f"(AUC {c['auc']:.3f}, balanced accuracy {c['balanced_accuracy']:.3f})")


def train_group(cli) -> click.Group:
    """``lorag train`` as a group: s1/s2 (the original command, its stage argument fixed) beside
    the grader trainers."""
    current = cli.commands.get("train")
    if isinstance(current, click.Group):
        return current
    group = click.Group("train", help="Train an adapter (s1, s2), a reranker or a classification head.")
    if current is not None:
        stage = next((p for p in current.params if p.name == "stage"), None)
        choices = list(getattr(stage.type, "choices", [])) if stage else []
        for name in choices:
            def run(_stage=name, **o):
                return current.callback(_stage, **o)

            group.add_command(click.Command(name, callback=run, help=f"{current.help} (stage {name})",
                                            params=[p for p in current.params if p is not stage]))
    cli.add_command(group)
    return group


# ---- training -----------------------------------------------------------------------------------

def mine_hard_negatives(pairs: list[Pair], k: int, embedder: str | None = None, seed: int = 13) -> list[dict]:
    """One row per positive training pair: the query, [positive, k hardest negatives], [1, 0, ...].

    Negatives are the training documents the first-stage embedder ranks highest for the query,
    skipping documents known to be relevant to it (same topic, or labelled relevant for the same
    query text): unlike ``sentence_transformers.util.mine_hard_negatives``, which only knows the
    paired positive, this never turns another relevant document into a negative."""
    from lorag_harness.embedder import embed

    positives = [p for p in pairs if p.label]
    docs = list(dict.fromkeys(p.document for p in pairs))
    topic_of = {p.document: p.document_topic for p in pairs if p.document_topic}
    relevant, not_relevant = {}, {}
    for p in pairs:
        (relevant if p.label else not_relevant).setdefault(p.query, set()).add(p.document)
    queries = list(dict.fromkeys(p.query for p in positives))
    sims = embed(queries, embedder) @ embed(docs, embedder).T
    row_of = {q: i for i, q in enumerate(queries)}
    rng = random.Random(seed)
    rows = []
    for p in positives:
        order = np.argsort(-sims[row_of[p.query]])
        negs = []
        for j in order:
            d = docs[j]
            if d in relevant[p.query] or (p.query_topic and topic_of.get(d) == p.query_topic):
                continue
            if not p.query_topic and d not in not_relevant.get(p.query, ()):  # no topics: only labelled negatives
                continue
            negs.append(d)
            if len(negs) == k:
                break
        if negs:
            rng.shuffle(negs)
            rows.append({"query": p.query, "docs": [p.document] + negs, "labels": [1.0] + [0.0] * len(negs)})
    return rows


def build_model(cfg: RerankConfig):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from lorag_harness.embedder import resolve_embedder

    base = cfg.base_model or resolve_embedder(None)
    try:
        with warnings.catch_warnings(), quiet_transformers():
            warnings.simplefilter("ignore")
            model = CrossEncoder(base, num_labels=1, max_length=cfg.max_length, device="cpu",
                                 activation_fn=torch.nn.Identity())
    except Exception as e:  # noqa: BLE001 - a bad --from: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"--from {cfg.base_model}: cannot load it as a cross-encoder ({first})") from None
    if model.num_labels != 1:
        raise LoragError(f"--from {cfg.base_model}: has {model.num_labels} output labels; the reranker trains one logit")
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model[0].model = get_peft_model(model[0].model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r,
                                                                   lora_alpha=cfg.alpha, lora_dropout=0.0))
    return model


def train_reranker(cfg: RerankConfig, dataset, progress=None, embedder: str | None = None) -> dict:
    """Train, calibrate on training pairs, save model and manifest to ``cfg.out``; returns the manifest."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss, ListNetLoss
    from transformers import PrinterCallback, TrainerCallback

    cfg.check()
    pairs = list(dataset.train_pairs)
    check_training_pairs(pairs, "lorag train reranker")
    out = check_out(cfg.out)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    n_pos = sum(p.label for p in pairs)
    pos_weight = cfg.pos_weight or (len(pairs) - n_pos) / n_pos
    if cfg.loss == "bce":
        data = HFDataset.from_dict({"query": [p.query for p in pairs], "doc": [p.document for p in pairs],
                                    "label": [float(p.label) for p in pairs]})
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(pos_weight))
    else:
        rows = mine_hard_negatives(pairs, cfg.negatives, embedder, cfg.seed)
        if not rows:
            raise LoragError("no hard negatives found in the training documents for a listwise loss: use --loss bce")
        data = HFDataset.from_list(rows)
        loss = (LambdaLoss if cfg.loss == "lambda" else ListNetLoss)(model)
    steps = cfg.steps or max(1, int(np.ceil(cfg.epochs * len(data) / cfg.batch_size)))

    log = {"losses": []}

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log["losses"].append(float(logs["loss"]))

        def on_step_end(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, steps, log["losses"][-1] if log["losses"] else float("nan"))

    with tempfile.TemporaryDirectory(prefix="lorag-reranker-") as tmp:
        args = CrossEncoderTrainingArguments(
            output_dir=tmp, max_steps=steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
            warmup_steps=int(cfg.warmup * steps), lr_scheduler_type="linear", logging_steps=1, save_strategy="no",
            report_to="none", disable_tqdm=True, use_cpu=True, seed=cfg.seed, data_seed=cfg.seed, bf16=cfg.bf16,
            dataloader_drop_last=False)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[Report()])
        trainer.remove_callback(PrinterCallback)  # progress goes to the Rich bar
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train()
        seconds = time.perf_counter() - start
    if cfg.lora:
        model[0].model = model[0].model.merge_and_unload()
    (out / "manifest.json").unlink(missing_ok=True)  # never new weights under the old manifest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(out))
    # threshold and probe from the saved model as the grader loads it: the trainer's bf16 autocast
    # stays wrapped around the in-memory model's forward
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader, probe_records

    saved = CrossEncoderGrader.load(str(out))
    sample = calibration_sample(pairs, max(cfg.calibration_pairs, 4), cfg.seed)
    probs = CrossEncoderGrader.predict(saved, sample)
    cal = calibration([p.label for p in sample], probs) if cfg.calibration_pairs and len({p.label for p in sample}) == 2 else None
    losses = log["losses"] or [float("nan")]
    tail = losses[-max(1, len(losses) // 10):]
    manifest = {
        "kind": "cross-encoder", "out": str(out), "key": config_key(cfg, pairs),
        "base_model": cfg.base_model or "all-minilm-l6-v2 (packaged encoder, new 1-logit head)",
        "data_hash": pairs_hash(pairs), "dataset": dataset.name,
        "hyper": {**{k: v for k, v in asdict(cfg).items() if k != "out"}, "pos_weight": pos_weight if cfg.loss == "bce" else None},
        "metrics": {"steps": steps, "rows": len(data), "training_pairs": len(pairs), "positives": n_pos,
                    "first_loss": losses[0], "final_loss": float(np.mean(tail)), "seconds": round(seconds, 1),
                    "steps_per_s": round(steps / seconds, 3) if seconds else None},
        "calibration": cal,
        "probe": probe_records(sample[:4], probs[:4]),  # the grader checks that the saved model reproduces these
    }
    write_manifest(out, manifest)
    return manifest


def reranker_options(f):
    opts = [
        click.option("--dataset", "-d", default="reuters-r8", show_default=True),
        click.option("--train-pairs", type=click.IntRange(min=1), default=1600, show_default=True),
        click.option("--positive-rate", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True,
                     help="Share of relevant pairs the pair builder makes (the Lightweight Relevance Grader paper: 0.123)"),
        click.option("--seed", type=int, default=13, show_default=True),
        click.option("--from", "base_model", default=None,
                     help="HF model id or folder (default: the packaged all-MiniLM-L6-v2 encoder, new head)"),
        click.option("--out", required=True, help="Model folder to write"),
        click.option("--loss", type=click.Choice(LOSSES), default="bce", show_default=True,
                     help="bce: labelled pairs; lambda/listnet: listwise over a positive and mined hard negatives"),
        click.option("--pos-weight", type=click.FloatRange(min=0, min_open=True), default=None, help="bce: weight of positives [negatives/positives]"),
        click.option("--negatives", type=click.IntRange(min=1), default=4, show_default=True, help="Listwise: hard negatives per positive"),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: from --epochs"),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True),
        click.option("--max-length", type=click.IntRange(min=1), default=128, show_default=True, help="Tokens of query + document"),
        click.option("--lora", is_flag=True, help="Train LoRA adapters (and the head) only; merged when saved"),
        click.option("--r", "r", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--alpha", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--bf16", is_flag=True, help="bfloat16 autocast (faster on AVX512-BF16 CPUs)"),
        click.option("--calibration-pairs", type=click.IntRange(min=0), default=512, show_default=True),
        click.option("--embedder", default=None, help="First-stage embedder for hard negatives (default: packaged MiniLM)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_with_progress(train_fn, cfg, dataset, what: str, **kw) -> dict:
    with progress_bar() as progress:
        bar = progress.add_task(f"train {what}", total=None, loss=float("nan"))
        manifest = train_fn(cfg, dataset, lambda step, total, loss: progress.update(bar, completed=step, total=total,
                                                                                     loss=loss), **kw)
    print_summary(what, manifest)
    return manifest


def dataset_for(o: dict):
    from lorag_harness.runner import load_dataset

    if not 0 < o["positive_rate"] < 1:
        raise LoragError(f"--positive-rate must be between 0 and 1 (exclusive), not {o['positive_rate']}")
    dataset = load_dataset(o["dataset"], {"n_train": o["train_pairs"], "seed": o["seed"], "positive_rate": o["positive_rate"]})
    for note in dataset.notes:  # pairs dropped or changed by the loader: said before training on them
        err.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    return dataset


@hookimpl(trylast=True)
def register_commands(cli):
    group = train_group(cli)

    from .recipe import recipe_options

    @group.command("reranker")
    @reranker_options
    @recipe_options
    def reranker(**o):
        """Train a cross-encoder reranker (grade with -g cross-encoder:OUT)."""
        cfg = RerankConfig(out=o["out"], base_model=o["base_model"], loss=o["loss"], pos_weight=o["pos_weight"],
                           negatives=o["negatives"], epochs=o["epochs"], steps=o["steps"], batch_size=o["batch_size"],
                           lr=o["lr"], max_length=o["max_length"], lora=o["lora"], r=o["r"], alpha=o["alpha"],
                           bf16=o["bf16"], calibration_pairs=o["calibration_pairs"], seed=o["seed"])
        cfg.check()
        check_out(cfg.out)
        if o["corpus"] or o["pairs"] or o["pairs_from"]:
            from .recipe import recipe_dataset

            source = click.get_current_context().get_parameter_source("dataset")
            if source == click.core.ParameterSource.DEFAULT and (o["corpus"] or o["pairs"]):
                o = {**o, "dataset": None}  # the --corpus collection (beir:) is the dataset
            dataset, _ = recipe_dataset(o, dataset_for)
        else:
            dataset = dataset_for(o)
        run_with_progress(train_reranker, cfg, dataset, "reranker", embedder=o["embedder"])
