"""Masked two-stage (Q)LoRA: stage s1 learns the relevant value, stage s2 the reason."""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lorag_harness import lm, prompts
from lorag_harness.errors import LoragError
from lorag_harness.model import Dataset, pairs_hash

from .batching import balance, collate, length_batches
from .calibrate import calibrate
from .examples import build_examples
from .loss import full_logits_loss, masked_loss

TARGET_MODULES = ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    stage: str = "s1"
    out: str = "adapters/s1"
    base_model: str | None = None
    init_adapter: str | None = None  # stage s2 starts from the S1 adapter
    loss: str = "masked"  # masked | full | weighted
    weight: float = 5.0
    quant: str = "auto"  # auto (nf4 on CUDA, none on CPU) | nf4 | none
    r: int = 32
    alpha: int = 64
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(TARGET_MODULES))
    lr: float = 2e-4
    warmup: float = 0.05
    batch_size: int = 4
    steps: int | None = None  # default: one epoch
    epochs: float = 1.0
    max_doc_tokens: int = 160
    balance: str = "none"  # over | under | none
    seed: int = 13
    calibration_pairs: int = 256  # training pairs the P(true) threshold is fitted on (0: keep 0.5)
    logits: str = "masked"  # masked | full: which loss implementation (bench only)

    def resolved_quant(self) -> str:
        if self.quant == "auto":
            return "nf4" if torch.cuda.is_available() else "none"
        if self.quant not in ("nf4", "none"):
            raise LoragError(f"unknown quantisation {self.quant!r}: auto, nf4 or none")
        return self.quant


def prepare_model(cfg: TrainConfig):
    """Base model (fp32 or NF4) with a trainable LoRA adapter (new, or the S1 adapter for stage 2)."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    quant = cfg.resolved_quant()
    model = lm.load_model(cfg.base_model, quant=None if quant == "none" else quant)
    model.config.use_cache = False
    if quant == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.init_adapter:
        if not (Path(cfg.init_adapter) / "adapter_config.json").is_file():
            raise LoragError(f"{cfg.init_adapter}: not an adapter folder (run `lorag train s1` first)")
        model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
    else:
        model = get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    model.train()
    return model


def config_key(cfg: TrainConfig, pairs) -> str:
    """What an adapter depends on: stage, data, hyper-parameters and the adapter it starts from."""
    parent = lm.adapter_manifest(cfg.init_adapter).get("key")
    parts = {k: v for k, v in asdict(cfg).items() if k not in ("out", "init_adapter")}
    blob = json.dumps({"config": parts, "data": pairs_hash(pairs), "parent": parent,
                       "template": prompts.template_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_current(cfg: TrainConfig, pairs) -> bool:
    """True when ``cfg.out`` already holds an adapter trained with this very configuration."""
    return lm.adapter_manifest(cfg.out).get("key") == config_key(cfg, pairs)


def train(cfg: TrainConfig, dataset: Dataset, progress=None, tokenizer=None) -> dict:
    """Train one stage and save adapter, tokenizer and manifest.json to ``cfg.out``; returns the manifest."""
    if cfg.stage == "s2" and not cfg.init_adapter:
        raise LoragError("stage s2 starts from the S1 adapter: --from adapters/s1")
    if not dataset.train_pairs:
        raise LoragError(f"dataset {dataset.name!r} has no training pairs")
    from lorag_harness.data.checks import require_both_labels

    require_both_labels(dataset.train_pairs, dataset.name, f"lorag train {cfg.stage}",
                        "a relevance adapter learns to tell the two apart; add pairs of the missing label")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    tok = tokenizer or lm.load_tokenizer(cfg.base_model)
    examples = build_examples(tok, dataset.train_pairs, dataset, cfg.stage, cfg.loss, cfg.weight, cfg.max_doc_tokens)
    examples = balance(examples, cfg.balance, rng)
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * len(examples) / cfg.batch_size))
    model = prepare_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    from transformers import get_cosine_schedule_with_warmup

    sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup * steps), steps)
    loss_fn = masked_loss if cfg.logits == "masked" else full_logits_loss
    losses, seen, batches = [], 0, []
    start = time.perf_counter()
    for step in range(steps):
        if not batches:
            batches = length_batches(examples, cfg.batch_size, rng)
        batch = collate(batches.pop(), tok.pad_token_id)
        loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        seen += batch["input_ids"].shape[0]
        if progress:
            progress(step + 1, steps, losses[-1])
    elapsed = time.perf_counter() - start
    calibration = calibrate(model, tok, dataset.train_pairs, cfg.calibration_pairs, cfg.max_doc_tokens, cfg.seed)
    manifest = {
        "key": config_key(cfg, dataset.train_pairs),
        "stage": cfg.stage,
        "base_model": cfg.base_model or lm.DEFAULT_MODEL,
        "init_adapter": cfg.init_adapter,
        "dataset": dataset.name,
        "data_hash": pairs_hash(dataset.train_pairs),
        "examples": len(examples),
        "masks": {"loss": cfg.loss, "weight": cfg.weight if cfg.loss == "weighted" else None,
                  "target": {"s1": "relevant value", "s2": "reason value through closing brace and EOS"}[cfg.stage],
                  "mean_loss_tokens": sum(len(e.loss_positions) for e in examples) / len(examples)},
        "hyperparameters": {k: v for k, v in asdict(cfg).items() if k not in ("out", "stage")} | {"quant": cfg.resolved_quant(), "steps": steps},
        "metrics": {"first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]),
                    "losses": [round(x, 5) for x in losses], "seconds": round(elapsed, 2),
                    "steps_per_s": steps / elapsed, "examples_per_s": seen / elapsed},
    }
    if calibration:
        manifest["calibration"] = calibration
    save(model, tok, manifest, Path(cfg.out))
    return manifest


def save(model, tokenizer, manifest: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def merge(adapter: str, out: str, base_model: str | None = None) -> Path:
    """Fold the adapter into the base weights; save the merged model with its tokenizer."""
    if base_model is None:
        base = lm.adapter_manifest(adapter).get("base_model")
        base_model = None if base == lm.DEFAULT_MODEL else base
    model = lm.load_model(base_model, adapter=adapter).merge_and_unload()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    lm.load_tokenizer(adapter).save_pretrained(out)
    return Path(out)
