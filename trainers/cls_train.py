"""``lorag train cls``: a decoder LM with a 2-class sequence-classification head.

Modes as in the "Lightweight Relevance Grader" paper: ``lora`` (LoRA adapters, the head trained
and saved through peft's ``modules_to_save``), ``full`` (every weight) and ``head`` (frozen
backbone, only the head). Weighted cross-entropy (class weights from the counts after
balancing), ``--balance over|under|both|none``; the threshold is calibrated on training pairs."""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass


from lorag_harness.errors import LoragError
from lorag_harness.api.types import pairs_hash
from lorag_harness.backends import precision

from .batching import balance
from .common import (BALANCE, MODES, calibration, check_loss, calibration_sample, check_positive, check_schedule, check_training_pairs,
                     config_key, run_metrics, write_manifest)
from .outputs import claim

DEFAULT_LR = {"lora": 3e-4, "full": 3e-5, "head": 1e-3}


@dataclass
class ClsConfig:
    out: str
    base_model: str | None = None  # None: the packaged SmolLM2-135M-Instruct
    mode: str = "lora"
    balance: str = "none"
    class_weight: bool = True  # weighted cross-entropy: n / (2 n_class) after balancing
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 16
    lr: float | None = None  # None: by mode
    warmup: float = 0.1
    r: int = 16
    alpha: int = 32
    max_doc_tokens: int = 64
    precision: str = "auto"  # auto (bf16 where measured faster: lorag_harness/backends/precision.py) | fp32 | bf16
    calibration_pairs: int = 512
    seed: int = 13
    force: bool = False  # replace what --out holds (another model or run); not part of the key

    def check(self) -> None:
        precision.check(self.precision)
        if self.mode not in MODES:
            raise LoragError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.balance not in BALANCE:
            raise LoragError(f"--balance must be one of {', '.join(BALANCE)}, not {self.balance!r}")
        check_positive(self, ("batch_size", "r", "alpha", "max_doc_tokens"))
        check_schedule(self)
        if self.calibration_pairs < 0:
            raise LoragError("--calibration-pairs must be >= 0")


def build(cfg: ClsConfig):
    """(model, core, tokenizer): ``core`` is the sequence-classification model the head sits on."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lorag_harness.backends.lm import quiet_transformers, resolve_model_path

    path = resolve_model_path(cfg.base_model)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        with quiet_transformers():  # "score.weight | MISSING": a new head is expected here
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - a bad --base-model: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"--base-model {cfg.base_model}: cannot load it with a classification head ({first})") from None
    if not hasattr(model, "score"):
        raise LoragError(f"--base-model {cfg.base_model}: {type(model).__name__} is not a decoder with a 'score' head")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model.config.pad_token_id = tok.pad_token_id
    if cfg.mode == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r, lora_alpha=cfg.alpha,
                                                 lora_dropout=0.0, modules_to_save=["score"]))
        return model, model.get_base_model(), tok
    if cfg.mode == "head":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("score.")
    return model, model, tok


def train_cls(cfg: ClsConfig, dataset, progress=None) -> dict:
    """Train, calibrate on training pairs, save to ``cfg.out``; returns the manifest."""
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    from lorag_harness.graders.cls_head import cls_logits, encode_pairs, head_logits, pad_batch
    from lorag_harness.graders.cross_encoder import probe_records, to_probability

    cfg.check()
    pairs = list(dataset.train_pairs)
    check_training_pairs(pairs, "lorag train cls")
    out = claim(cfg.out, "cls", config_key(cfg, pairs), cfg.force)
    used = precision.resolve(cfg.precision, "cpu")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    model, core, tok = build(cfg)
    examples = balance(pairs, cfg.balance, rng)
    n_pos = sum(e.label for e in examples)
    counts = torch.tensor([len(examples) - n_pos, n_pos], dtype=torch.float32)
    weight = counts.sum() / (2 * counts) if cfg.class_weight else None
    seqs = encode_pairs(tok, examples, cfg.max_doc_tokens)
    labels = [int(e.label) for e in examples]
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * len(examples) / cfg.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    lr = cfg.lr or DEFAULT_LR[cfg.mode]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * steps), steps)
    order: list[int] = []
    losses = []
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(seqs)), len(seqs))
        rows, order = order[: cfg.batch_size], order[cfg.batch_size :]
        ids, mask, pos = pad_batch([seqs[i] for i in rows], tok.pad_token_id)
        with precision.autocast(used):
            logits = head_logits(core, ids, mask, pos)
        loss = F.cross_entropy(logits.float(), torch.tensor([labels[i] for i in rows]), weight=weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(check_loss(float(loss.detach()), step))
        if progress:
            progress(step, steps, losses[-1])
    seconds = time.perf_counter() - start
    model.eval()
    sample = calibration_sample(pairs, max(cfg.calibration_pairs, 4), cfg.seed)
    # float32, as the grader scores by default (bf16 is for the training steps)
    probs = to_probability(cls_logits(core, encode_pairs(tok, sample, cfg.max_doc_tokens), tok.pad_token_id))
    cal = calibration([p.label for p in sample], probs) if cfg.calibration_pairs and len({p.label for p in sample}) == 2 else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # never new weights under the old manifest
    model.save_pretrained(str(out))  # lora: the adapter with the head (modules_to_save); else the whole model
    tok.save_pretrained(str(out))
    manifest = {
        "kind": "cls", "out": str(out), "key": config_key(cfg, pairs),
        "base_model": cfg.base_model, "data_hash": pairs_hash(pairs), "dataset": dataset.name,
        "hyper": {**{k: v for k, v in asdict(cfg).items() if k not in ("out", "force")}, "lr": lr,
                  "class_weights": weight.tolist() if weight is not None else None, "precision_used": used},
        "machine": precision.machine(used),
        "metrics": run_metrics(steps, len(examples), pairs, losses, seconds, positives=n_pos),
        "calibration": cal,
        "probe": probe_records(sample[:4], probs[:4]),  # the grader checks that the saved model reproduces these
    }
    write_manifest(out, manifest)
    return manifest
