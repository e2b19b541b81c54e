"""What the trainers share: option groups, the output folder check, the training data, calibration on
training pairs, manifests and the progress display."""
from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag_harness.api.types import Pair, pairs_hash
from lorag_harness.cli.options import Finite
from lorag_harness.errors import LoragError

err = Console(stderr=True)
LOSSES = ("bce", "lambda", "listnet")  # lorag train reranker
MODES = ("lora", "full", "head")  # lorag train cls
BALANCE = ("none", "over", "under", "both")


def data_options(f):
    """The training data: dataset, how many pairs, the share of relevant ones, the seed."""
    for opt in reversed([
        click.option("--dataset", "-d", default="reuters-r8", show_default=True, help="Dataset spec, e.g. beir:DIR"),
        click.option("--train-pairs", type=click.IntRange(min=1), default=1600, show_default=True),
        click.option("--positive-rate", type=Finite(0.0, 1.0, min_open=True, max_open=True), default=0.5,
                     show_default=True,
                     help="Share of relevant pairs the pair builder makes (the Lightweight Relevance Grader paper: 0.123)"),
        click.option("--seed", type=int, default=13, show_default=True),
    ]):
        f = opt(f)
    return f


def check_positive(cfg, names) -> None:
    """Refuse a count below 1 in a trainer config, naming its option."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise LoragError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(cfg, name)}")


def check_schedule(cfg) -> None:
    """--steps, --epochs, --lr and --warmup of a trainer config (``lr`` None: the trainer's default)."""
    if cfg.steps is not None and cfg.steps < 1:
        raise LoragError(f"--steps must be >= 1, not {cfg.steps}")
    if cfg.epochs <= 0 or (cfg.lr is not None and cfg.lr <= 0) or not 0 <= cfg.warmup < 1:
        raise LoragError("--epochs and --lr must be > 0 and --warmup in [0, 1)")


# options added later, at the value that reproduces earlier runs: left out of the key, so models
# trained before them keep theirs
KEYLESS_DEFAULTS = {"target_auc": None, "tuned_share": 1.0}


def keyed_config(cfg, skip: tuple[str, ...] = ("out", "force")) -> dict:
    """The config fields a trained model's key covers."""
    return {k: v for k, v in asdict(cfg).items()
            if k not in skip and not (k in KEYLESS_DEFAULTS and v == KEYLESS_DEFAULTS[k])}


def config_key(cfg, pairs) -> str:
    """Everything a trained model depends on: hyper-parameters and the labelled training pairs."""
    blob = json.dumps({"config": keyed_config(cfg), "data": pairs_hash(pairs)}, sort_keys=True)
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


def calibration_sample(pairs: list[Pair], n: int, seed: int) -> list[Pair]:
    return random.Random(seed).sample(pairs, min(n, len(pairs)))


def calibration(labels: list[bool], scores) -> dict:
    """Youden threshold on training-pair scores, with the AUC and balanced accuracy there."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from lorag_harness.evaluation.calibration import auc_interval

    from .calibrate import youden_threshold

    scores = np.asarray(scores, dtype=float)
    cut = youden_threshold(labels, scores)
    _, low, high = auc_interval(labels, scores)
    return {"pairs": len(labels), "threshold": cut, "auc": float(roc_auc_score(labels, scores)),
            "auc_low": round(low, 4), "auc_high": round(high, 4),
            "balanced_accuracy": float(balanced_accuracy_score(labels, scores >= cut)),
            "positive_rate": float(np.mean(labels))}


def write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out / "manifest.json")


def progress_bar():
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
    from lorag_harness.progress import progress

    return progress(*columns, console=err)


def print_summary(what: str, manifest: dict) -> None:
    m, c = manifest["metrics"], manifest.get("calibration") or {}
    if manifest.get("machine"):
        from lorag_harness.backends.precision import describe

        err.print(f"{what}: on {describe(manifest['machine'])}", soft_wrap=True)
    err.print(f"{what}: loss {m['first_loss']:.3f} → {m['final_loss']:.3f} in {m['seconds']:.0f} s "
              f"({m['steps']} steps) → {manifest['out']}")
    if c:
        err.print(f"{what}: threshold {c['threshold']:.3f} on {c['pairs']} training pairs "
                  f"(AUC {c['auc']:.3f}, balanced accuracy {c['balanced_accuracy']:.3f})")
        if c.get("auc_high") is not None and c["auc_high"] < 0.5:
            err.print(f"[bold red]WARNING: {manifest['out']} ranks its training pairs upside down (AUC {c['auc']:.2f}, "
                      f"95% CI {c['auc_low']:.2f}–{c['auc_high']:.2f}); graders will refuse it: check the pairs' "
                      "labels and negatives, then retrain[/]")


def run_with_progress(train_fn, cfg, dataset, what: str, **kw) -> dict:
    with progress_bar() as progress:
        bar = progress.add_task(f"train {what}", total=None, loss=float("nan"))
        manifest = train_fn(cfg, dataset, lambda step, total, loss: progress.update(bar, completed=step, total=total,
                                                                                     loss=loss), **kw)
    print_summary(what, manifest)
    return manifest


def dataset_for(o: dict):
    from lorag_harness.evaluation.runner import load_dataset

    dataset = load_dataset(o["dataset"], {"n_train": o["train_pairs"], "seed": o["seed"], "positive_rate": o["positive_rate"]})
    for note in dataset.notes:  # pairs dropped or changed by the loader: said before training on them
        err.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    return dataset


def check_loss(loss: float, step: int) -> float:
    """``loss``, or a stop: a run whose loss is nan or infinite has diverged and must not be saved as trained."""
    import math

    if not math.isfinite(loss):
        raise LoragError(f"training diverged: the loss was {loss} at step {step}; nothing was saved (try a lower --lr)")
    return loss


def loss_callback(steps: int, progress=None):
    """``(callback, log)`` for a Hugging Face trainer: ``log["losses"]`` collects the logged losses and
    ``progress(step, steps, loss)`` is told after every step. A loss that is not finite stops the run
    (nothing is saved): a diverged model must not be written as a trained one."""
    from transformers import TrainerCallback

    log = {"losses": []}

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log["losses"].append(check_loss(float(logs["loss"]), state.global_step))

        def on_step_end(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, steps, log["losses"][-1] if log["losses"] else float("nan"))

    return Report(), log


def run_metrics(steps: int, rows: int, pairs: list, losses: list[float], seconds: float,
                positives: int | None = None, cpu_seconds: float | None = None) -> dict:
    """The ``metrics`` of a trained model's manifest: steps, data (``positives``: of the rows trained on,
    default: of ``pairs``), first and final loss, wall time (and the process's CPU time, when given)."""
    losses = losses or [float("nan")]
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": steps, "rows": rows, "training_pairs": len(pairs), "positives": sum(p.label for p in pairs) if positives is None else positives,
            "first_loss": losses[0], "final_loss": float(np.mean(tail)), "seconds": round(seconds, 1),
            "steps_per_s": round(steps / seconds, 3) if seconds else None,
            **({"cpu_seconds": round(cpu_seconds, 1)} if cpu_seconds is not None else {})}


def trainer_arguments(cfg, steps: int, output_dir: str) -> dict:
    """The arguments every sentence-transformers trainer here shares: steps, batch, lr with linear warm-up,
    a loss logged each step, nothing saved or reported, CPU, seeded."""
    return dict(output_dir=output_dir, max_steps=steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                warmup_steps=int(cfg.warmup * steps), lr_scheduler_type="linear", logging_steps=1, save_strategy="no",
                report_to="none", disable_tqdm=True, use_cpu=True, seed=cfg.seed, data_seed=cfg.seed,
                logging_nan_inf_filter=False)  # a nan loss is logged as nan (and stops the run), not hidden


def triples(pairs: list[Pair], with_negatives: bool, seed: int, max_rows: int | None = None) -> list[dict]:
    """One row per relevant pair: (anchor, positive[, negative]); the negative is one of the same
    query's negative pairs, in turn. Rows of a query without a negative are dropped when negatives
    are asked for (every row needs the same columns). Over ``max_rows``: every judged row, then a
    seeded sample of the others."""
    by_query: OrderedDict[str, tuple[list[str], list[str], set]] = OrderedDict()
    for p in pairs:
        pos, neg, how = by_query.setdefault(p.query, ([], [], set()))
        (pos if p.label else neg).append(p.document)
        how.add(p.provenance.startswith("judged"))
    rng = random.Random(seed)
    judged, other = [], []
    for q, (pos, neg, how) in by_query.items():
        if with_negatives and not neg:
            continue
        rng.shuffle(neg)
        for i, d in enumerate(pos):
            (judged if True in how else other).append(
                {"anchor": q, "positive": d, **({"negative": neg[i % len(neg)]} if with_negatives else {})})
    judged, other = judged_first(judged, other, max_rows, rng)
    return judged + other


def judged_first(judged: list, other: list, max_rows: int | None, rng: random.Random) -> tuple[list, list]:
    """At most ``max_rows`` items in all: every judged one (the first ``max_rows``), then a sample of the
    others drawn with ``rng``."""
    if max_rows is None or len(judged) + len(other) <= max_rows:
        return judged, other
    return judged[:max_rows], rng.sample(other, max(0, max_rows - len(judged)))
