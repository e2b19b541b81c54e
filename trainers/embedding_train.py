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

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair, pairs_hash

from lorag_harness.backends import precision

from .common import check_positive, check_schedule, config_key, loss_callback, run_metrics, trainer_arguments, write_manifest
from .outputs import claim


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
    force: bool = False  # replace what --out holds (another model or run); not part of the key

    def check(self) -> None:
        check_positive(self, ("batch_size", "max_length"))
        if self.max_rows is not None and self.max_rows < 2:
            raise LoragError(f"--max-rows must be >= 2, not {self.max_rows}")
        if self.batch_size < 2:
            raise LoragError("--batch-size must be >= 2 (the other rows of a batch are the in-batch negatives)")
        check_schedule(self)
        if self.teacher is not None and not self.negatives:
            raise LoragError("--teacher distils score margins between a positive and a negative: drop --no-negatives")


def teacher_margins(spec: str, rows: list[dict], dataset, batch_size: int = 32) -> list[float]:
    """The teacher grader's score(query, positive) - score(query, negative) per row (GPL's pseudo
    labels); the teacher is any grader spec, an ``openai:`` judge too, built on the training pairs."""
    from lorag_harness.api.registry import GraderContext
    from lorag_harness.evaluation.runner import build_grader

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
    from lorag_harness.backends.embedder import resolve_embedder

    return resolve_embedder(cfg.base_model)


def train_embedding(cfg: EmbeddingConfig, dataset, progress=None) -> dict:
    """Train and save the model and its manifest to ``cfg.out``; returns the manifest."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MarginMSELoss, MultipleNegativesRankingLoss
    try:  # sentence-transformers >= 6 (the old path warns)
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:
        from sentence_transformers.training_args import BatchSamplers
    from transformers import PrinterCallback

    cfg.check()
    pairs = list(dataset.train_pairs)
    rows = triples(pairs, cfg.negatives, cfg.seed, cfg.max_rows)
    if len(rows) < 2:
        raise LoragError(f"lorag train embedding needs relevant pairs with negatives for at least 2 queries (got {len(rows)} rows)")
    out = claim(cfg.out, "embedding", config_key(cfg, pairs), cfg.force)
    out.mkdir(parents=True, exist_ok=True)
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
    report, log = loss_callback(steps, progress)

    with tempfile.TemporaryDirectory(prefix="lorag-embedding-") as tmp:
        args = SentenceTransformerTrainingArguments(
            **trainer_arguments(cfg, steps, tmp),
            batch_sampler=BatchSamplers.NO_DUPLICATES)  # a query twice in a batch would be its own false negative
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                             loss=MarginMSELoss(model) if cfg.teacher else MultipleNegativesRankingLoss(model),
                                             callbacks=[report])
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

    manifest = {
        "kind": "embedding", "out": str(out), "key": config_key(cfg, pairs),
        "base_model": cfg.base_model or "all-minilm-l6-v2 (packaged)", "data_hash": pairs_hash(pairs),
        "dataset": dataset.name, "pairs": dict(Counter(p.provenance or "unknown" for p in pairs)),
        "hyper": {k: v for k, v in asdict(cfg).items() if k not in ("out", "force")},
        "metrics": run_metrics(steps, len(data), pairs, log["losses"], seconds),
        "machine": precision.machine("fp32"),
    }
    write_manifest(out, manifest)
    return manifest
