"""``lorag train embedding``: fine-tune the sentence-transformers embedder (MultipleNegativesRankingLoss:
in-batch negatives plus the pairs' own negatives, as in GPL's hard-negative step) on pairs from
``--pairs-from synthetic|qrels|both``. The folder is a SentenceTransformer model with a
manifest.json; grade with ``-g embedding:OUT`` or use it as ``--embedder OUT``."""
from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.api.types import pairs_hash

from lorag_harness.backends import precision

from .common import (check_positive, check_schedule, config_key, loss_callback, run_metrics, trainer_arguments, triples,
                     write_manifest)
from .outputs import claim
from .teacher import teacher_margins


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
    # the fine-tuned weights' share in the saved model, the rest the base model's (WiSE-FT's weight-space
    # ensemble, Wortsman et al. 2022); 1.0 saves the weights as trained
    tuned_share: float = 1.0
    seed: int = 13
    force: bool = False  # replace what --out holds (another model or run); not part of the key

    def check(self) -> None:
        check_positive(self, ("batch_size", "max_length"))
        if self.max_rows is not None and self.max_rows < 2:
            raise LoragError(f"--max-rows must be >= 2, not {self.max_rows}")
        if self.batch_size < 2:
            raise LoragError("--batch-size must be >= 2 (the other rows of a batch are the in-batch negatives)")
        check_schedule(self)
        if not 0.0 < self.tuned_share <= 1.0:
            raise LoragError(f"--tuned-share must be in (0, 1], not {self.tuned_share}")
        if self.teacher is not None and not self.negatives:
            raise LoragError("--teacher distils score margins between a positive and a negative: drop --no-negatives")


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
    out = claim(cfg.out, "embedding", config_key(cfg, pairs), cfg.force)  # made when the model is saved
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
        for r, m in zip(rows, teacher_margins(cfg.teacher, rows, dataset)[0]):
            r["label"] = float(m)
    start_weights = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.tuned_share < 1.0 else {}
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
    if cfg.tuned_share < 1.0:
        interpolate(model, start_weights, cfg.tuned_share)
    model.max_seq_length = encode_length  # graded with the base model's length
    out.mkdir(parents=True, exist_ok=True)
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


def interpolate(model, start: dict, share: float) -> None:
    """Each floating-point weight becomes ``share`` x fine-tuned + (1 - share) x its value in ``start``, in place."""
    import torch

    with torch.no_grad():
        model.load_state_dict({k: share * v + (1 - share) * start[k] if v.is_floating_point() else v
                               for k, v in model.state_dict().items()})
