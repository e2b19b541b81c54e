"""``lorag train embedding``: fine-tune the sentence-transformers embedder (MultipleNegativesRankingLoss:
in-batch negatives plus the pairs' own negatives, as in GPL's hard-negative step) on pairs from
``--pairs-from synthetic|qrels|both``. The folder is a SentenceTransformer model with a
manifest.json; grade with ``-g embedding:OUT`` or use it as ``--embedder OUT``."""
from __future__ import annotations

import json
import random
import tempfile
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass

import click
import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl
from lorag_harness.model import Pair, pairs_hash

from .recipe import recipe_options
from .rerank_train import (check_out, check_positive, config_key, dataset_for, progress_bar, train_group,
                           write_manifest)


@dataclass
class EmbeddingConfig:
    out: str
    base_model: str | None = None  # None: the packaged all-MiniLM-L6-v2
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 32
    lr: float = 2e-5
    warmup: float = 0.1
    max_length: int = 128
    negatives: bool = True  # each row also carries one of the pair's own negatives
    max_rows: int | None = 1536  # judged rows first, then a seeded sample of the synthetic ones (time on 2 CPU cores)
    teacher: str | None = None  # a grader spec: MarginMSE on its score margins instead of the labels
    seed: int = 13

    def check(self) -> None:
        check_positive(self, ("batch_size", "max_length"))
        if self.max_rows is not None and self.max_rows < 2:
            raise LoragError(f"--max-rows must be >= 2, not {self.max_rows}")
        if self.batch_size < 2:
            raise LoragError("--batch-size must be >= 2 (the other rows of a batch are the in-batch negatives)")
        if self.steps is not None and self.steps < 1:
            raise LoragError(f"--steps must be >= 1, not {self.steps}")
        if self.epochs <= 0 or self.lr <= 0 or not 0 <= self.warmup < 1:
            raise LoragError("--epochs and --lr must be > 0 and --warmup in [0, 1)")
        if self.teacher is not None and not self.negatives:
            raise LoragError("--teacher distils score margins between a positive and a negative: drop --no-negatives")


def teacher_margins(spec: str, rows: list[dict], dataset, batch_size: int = 32) -> list[float]:
    """The teacher grader's score(query, positive) - score(query, negative) per row (GPL's pseudo
    labels); the teacher is any grader spec, an ``openai:`` judge too, built on the training pairs."""
    from lorag_harness.registry import GraderContext
    from lorag_harness.runner import build_grader

    grader = build_grader(spec, GraderContext(dataset=dataset))
    pairs = [Pair(r["anchor"], r[k], k == "positive") for r in rows for k in ("positive", "negative")]
    scores = []
    for i in range(0, len(pairs), batch_size):
        for j in grader.grade(pairs[i:i + batch_size]):
            if j.score is None:
                raise LoragError(f"--teacher {spec}: gave a judgment without a score; distillation needs scores")
            scores.append(j.score)
    return [scores[2 * i] - scores[2 * i + 1] for i in range(len(rows))]


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
    if max_rows is not None and len(judged) + len(other) > max_rows:
        other = rng.sample(other, max(0, max_rows - len(judged)))
        judged = judged[:max_rows]
    return judged + other


def base_path(cfg: EmbeddingConfig) -> str:
    from lorag_harness.embedder import resolve_embedder

    return resolve_embedder(cfg.base_model)


def train_embedding(cfg: EmbeddingConfig, dataset, progress=None) -> dict:
    """Train and save the model and its manifest to ``cfg.out``; returns the manifest."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MarginMSELoss, MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers
    from transformers import PrinterCallback, TrainerCallback

    cfg.check()
    pairs = list(dataset.train_pairs)
    rows = triples(pairs, cfg.negatives, cfg.seed, cfg.max_rows)
    if len(rows) < 2:
        raise LoragError(f"lorag train embedding needs relevant pairs with negatives for at least 2 queries (got {len(rows)} rows)")
    out = check_out(cfg.out)
    torch.manual_seed(cfg.seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SentenceTransformer(base_path(cfg), device="cpu")
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"--from {cfg.base_model}: cannot load it as a sentence-transformers model ({first})") from None
    encode_length = model.max_seq_length
    model.max_seq_length = min(cfg.max_length, encode_length or cfg.max_length)
    if cfg.teacher:
        for r, m in zip(rows, teacher_margins(cfg.teacher, rows, dataset)):
            r["label"] = float(m)
    data = HFDataset.from_list(rows).shuffle(seed=cfg.seed)
    steps = cfg.steps or max(1, int(np.ceil(cfg.epochs * len(data) / cfg.batch_size)))
    log = {"losses": []}

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log["losses"].append(float(logs["loss"]))

        def on_step_end(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, steps, log["losses"][-1] if log["losses"] else float("nan"))

    with tempfile.TemporaryDirectory(prefix="lorag-embedding-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, max_steps=steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
            warmup_steps=int(cfg.warmup * steps), lr_scheduler_type="linear", logging_steps=1, save_strategy="no",
            report_to="none", disable_tqdm=True, use_cpu=True, seed=cfg.seed, data_seed=cfg.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES)  # a query twice in a batch would be its own false negative
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                             loss=MarginMSELoss(model) if cfg.teacher else MultipleNegativesRankingLoss(model),
                                             callbacks=[Report()])
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train()
        seconds = time.perf_counter() - start
    model.max_seq_length = encode_length  # graded with the base model's length
    (out / "manifest.json").unlink(missing_ok=True)
    model.save(str(out))
    from collections import Counter

    losses = log["losses"] or [float("nan")]
    tail = losses[-max(1, len(losses) // 10):]
    manifest = {
        "kind": "embedding", "out": str(out), "key": config_key(cfg, pairs),
        "base_model": cfg.base_model or "all-minilm-l6-v2 (packaged)", "data_hash": pairs_hash(pairs),
        "dataset": dataset.name, "pairs": dict(Counter(p.provenance or "unknown" for p in pairs)),
        "hyper": {k: v for k, v in asdict(cfg).items() if k != "out"},
        "metrics": {"steps": steps, "rows": len(data), "training_pairs": len(pairs), "first_loss": losses[0],
                    "final_loss": float(np.mean(tail)), "seconds": round(seconds, 1),
                    "steps_per_s": round(steps / seconds, 3) if seconds else None},
        "machine": machine(),
    }
    write_manifest(out, manifest)
    return manifest


def machine() -> dict:
    """CPU model, torch capability, cores, precision and load: recorded beside every timing."""
    import os
    import platform

    import torch

    cpu = platform.processor() or ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "precision": "float32",
            "load_average": [round(x, 2) for x in os.getloadavg()]}


@hookimpl(trylast=True)
def register_commands(cli):
    group = train_group(cli)

    @group.command("embedding")
    @click.option("--dataset", "-d", default=None, help="Dataset whose training judgments --pairs-from qrels|both uses "
                                                          "[the --corpus beir: collection]")
    @recipe_options
    @click.option("--train-pairs", type=click.IntRange(min=1), default=None, help="At most this many judged training pairs")
    @click.option("--seed", type=int, default=13, show_default=True)
    @click.option("--from", "base_model", default=None, help="sentence-transformers model id or folder [packaged MiniLM]")
    @click.option("--out", required=True, help="Model folder to write")
    @click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
    @click.option("--steps", type=click.IntRange(min=1), default=None, help="Default: from --epochs")
    @click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
    @click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-5, show_default=True)
    @click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True,
                  help="Tokens per text while training (grading keeps the model's own length)")
    @click.option("--no-negatives", is_flag=True, help="In-batch negatives only")
    @click.option("--teacher", default=None,
                  help="Grader spec (openai: judges too): distil its score margins (MarginMSE) instead of the labels")
    @click.option("--max-rows", type=click.IntRange(min=2), default=1536, show_default=True,
                  help="Training rows: every judged one, then a seeded sample of the synthetic ones")
    def embedding(**o):
        """Fine-tune the embedder on in-domain pairs (grade with -g embedding:OUT)."""
        from .recipe import recipe_dataset

        cfg = EmbeddingConfig(out=o["out"], base_model=o["base_model"], epochs=o["epochs"], steps=o["steps"],
                              batch_size=o["batch_size"], lr=o["lr"], max_length=o["max_length"],
                              negatives=not o["no_negatives"], max_rows=o["max_rows"], teacher=o["teacher"], seed=o["seed"])
        cfg.check()
        check_out(cfg.out)
        if o["dataset"] is None and o["corpus"] is None and o["pairs"] is None:
            raise LoragError("lorag train embedding needs --corpus SPEC, --pairs FILE or -d DATASET")
        o = {**o, "train_pairs": o["train_pairs"] or 10**9, "positive_rate": 0.5}
        dataset, _ = recipe_dataset(o, dataset_for)
        with progress_bar() as bar:
            task = bar.add_task("train embedding", total=None, loss=float("nan"))
            manifest = train_embedding(cfg, dataset, lambda s, t, l: bar.update(task, completed=s, total=t, loss=l))
        m = manifest["metrics"]
        from rich.console import Console

        Console(stderr=True).print(f"embedding: loss {m['first_loss']:.3f} → {m['final_loss']:.3f} in {m['seconds']:.0f} s "
                                   f"({m['steps']} steps, {m['rows']} rows) → {manifest['out']}")
