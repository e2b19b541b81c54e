"""Masked two-stage (Q)LoRA: stage s1 learns the relevant value, stage s2 the reason."""
from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lorag_harness.backends import lm
from lorag_harness.backends import precision, prompts
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Dataset, pairs_hash
from lorag_harness.data.validation import require_both_labels

from .batching import balance, balanced_batches, collate, document_batches, length_batches
from .calibrate import calibrate, youden_threshold
from .common import check_loss, keyed_config
from .diagnostics import Validator, loss_note, prior_entropy, split_by_document, verdict
from .examples import build_examples
from .loss import full_logits_loss, masked_loss, value_ce

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
    warmup_min_steps: int = 0  # at least this many warm-up steps (never more than a quarter of the run)
    schedule: str = "cosine"  # cosine (decay to 0 over the steps) | constant (after the warm-up)
    batch_size: int = 4
    steps: int | None = None  # default: one epoch
    epochs: float = 1.0
    max_doc_tokens: int = 160
    balance: str = "none"  # over | under | none
    seed: int = 13
    calibration_pairs: int = 256  # without a validation slice: training pairs the threshold is fitted on (0: keep 0.5)
    logits: str = "masked"  # masked | full: which loss implementation (bench only)
    objective: str = "token"  # stage s1: token (cross-entropy over the vocabulary) | binary (over " true"/" false")
    batches: str = "length"  # length (length-sorted) | balanced (half positive) | document (a document's pairs together)
    precision: str = "auto"  # auto (bf16 where measured faster: lorag_harness/backends/precision.py) | fp32 | bf16
    autocast: str | None = None  # former name of precision: none -> fp32, bf16 -> bf16
    prefix_cache: bool = False  # the prompt prefix all examples share is run once per batch (exact: trainers/loss.py)
    grad_accum: int = 1  # batches per optimiser step
    top_layers: int = 0  # LoRA on the last N decoder layers only (0: all): no backward below them
    val_pairs: int = 192  # stage s1: training pairs held out by document for validation (0: none)
    val_every: int = 20  # optimiser steps between validations
    patience: int = 4  # validations without improvement before stopping early (0: never)
    target_auc: float | None = None  # stage s1: below it at the planned end, go on val_every steps at a time up to time_budget_max
    time_budget: float | None = None  # seconds for the training loop: the step count is chosen to fit
    time_budget_max: float | None = None  # a budget too small for min_steps on this machine grows up to this
    min_steps: int = 0  # with time_budget_max: the steps the budget grows to hold (at least a useful run)
    force: bool = False  # replace what --out holds (another model or run); not part of the key

    def __post_init__(self):
        if self.autocast is not None:
            if self.autocast not in ("none", "bf16"):
                raise LoragError(f"autocast must be one of none, bf16, not {self.autocast!r}")
            self.precision, self.autocast = {"none": "fp32", "bf16": "bf16"}[self.autocast], None
        precision.check(self.precision)
        choices = {"schedule": ("cosine", "constant"), "objective": ("token", "binary"), "batches": ("length", "balanced", "document"), "stage": ("s1", "s2")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise LoragError(f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}")
        if self.objective == "binary" and (self.stage != "s1" or self.loss != "masked"):
            raise LoragError("the binary objective is for stage s1 with the masked loss only")
        for key in ("batch_size", "grad_accum", "val_every"):
            if getattr(self, key) < 1:
                raise LoragError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise LoragError(f"time_budget must be a positive number of seconds, not {self.time_budget!r}")
        if self.time_budget_max is not None:
            if not self.time_budget:
                raise LoragError("--time-budget-max needs a time budget to grow from: give --time-budget too")
            if self.time_budget_max < self.time_budget:
                raise LoragError(f"--time-budget-max ({self.time_budget_max:g} s) must be at least the time budget "
                                 f"({self.time_budget:g} s; --time-budget sets it)")
        if self.target_auc is not None:
            if not 0.5 < self.target_auc < 1:
                raise LoragError(f"target_auc must be between 0.5 and 1, not {self.target_auc!r}")
            if self.stage != "s1":
                raise LoragError("--target-auc is for stage s1 only (stage 2 has no validation slice)")
            if not self.val_pairs:
                raise LoragError("--target-auc needs a validation slice: --val-pairs above 0")
            if not self.time_budget_max:
                raise LoragError("--target-auc needs --time-budget-max: how long the run may go on to reach it")
        if self.prefix_cache and self.logits != "masked":
            raise LoragError("prefix_cache needs the masked logits")

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
        layers = None
        if cfg.top_layers:
            n = model.config.num_hidden_layers
            layers = list(range(max(0, n - cfg.top_layers), n))
        model = get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM",
                                                 layers_to_transform=layers))
    model.train()
    return model


def config_key(cfg: TrainConfig, pairs) -> str:
    """What an adapter depends on: stage, data, hyper-parameters and the adapter it starts from."""
    parent = lm.adapter_manifest(cfg.init_adapter).get("key")
    parts = keyed_config(cfg, ("out", "init_adapter", "force"))
    blob = json.dumps({"config": parts, "data": pairs_hash(pairs), "parent": parent,
                       "template": prompts.template_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_current(cfg: TrainConfig, pairs) -> bool:
    """True when ``cfg.out`` already holds an adapter trained with this very configuration."""
    return lm.adapter_manifest(cfg.out).get("key") == config_key(cfg, pairs)


class Schedule:
    """Linear warm-up then cosine decay over ``total`` steps (or, ``constant``, the full rate); ``total``
    may be set after a timed warm-up (the time budget), so the lambda reads it at every step. The
    warm-up is ``warmup`` of the steps, and at least ``min_steps`` (up to a quarter of the run)."""

    def __init__(self, total: int, warmup: float, kind: str = "cosine", min_steps: int = 0):
        self.total, self.warmup, self.kind, self.min_steps = total, warmup, kind, min_steps

    def __call__(self, step: int) -> float:
        w = max(1, int(self.warmup * self.total), min(self.min_steps, self.total // 4))
        if step < w:
            return (step + 1) / (w + 1)
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - w) / max(1, self.total - w))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


PROBE_STEPS = 4  # steps timed before the time budget fixes the step count (the first one is discarded)


def lora_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def load_lora_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def cut_prefix(examples: list, p: int) -> list:
    """The examples without their first ``p`` tokens (the prefix they all share)."""
    from dataclasses import replace

    return [replace(e, input_ids=e.input_ids[p:], weights=e.weights[p:]) for e in examples]


def train(cfg: TrainConfig, dataset: Dataset, progress=None, tokenizer=None, log=None, status=None) -> dict:
    """Train one stage and save adapter, tokenizer and manifest.json to ``cfg.out``; returns the manifest.
    ``progress(step, total, loss, val_auc)`` is called after every optimiser step, ``status(text)`` when
    the run enters a phase (validating, training), ``log(line)`` with the time budget's plan.

    Stage 1 holds a validation slice out of the training pairs (whole documents), measures its
    ROC-AUC of P(true) every ``val_every`` steps, keeps the best adapter state, stops after
    ``patience`` validations without improvement, fits the threshold on the slice, and writes
    ``weak: true`` (with the reasons) in the manifest when the run did not learn."""
    if cfg.stage == "s2" and not cfg.init_adapter:
        raise LoragError("stage s2 starts from the S1 adapter: --from adapters/s1")
    if not dataset.train_pairs:
        raise LoragError(f"dataset {dataset.name!r} has no training pairs")
    require_both_labels(dataset.train_pairs, dataset.name, f"lorag train {cfg.stage}",
                        "a relevance adapter learns to tell the two apart; add pairs of the missing label")
    from .outputs import claim

    claim(cfg.out, f"{cfg.stage}-adapter", config_key(cfg, dataset.train_pairs), cfg.force)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    tok = tokenizer or lm.load_tokenizer(cfg.base_model)
    fit_pairs, val_pairs = split_by_document(dataset.train_pairs, cfg.val_pairs if cfg.stage == "s1" else 0, cfg.seed)
    examples = build_examples(tok, fit_pairs, dataset, cfg.stage, cfg.loss, cfg.weight, cfg.max_doc_tokens)
    examples = balance(examples, cfg.balance, rng)
    prefix = None
    if cfg.prefix_cache:  # the shared prompt prefix (chat template, instruction): run once per batch
        from lorag_harness.graders.prefix_cache import common_prefix

        p = min(common_prefix([e.input_ids for e in examples]), min(e.loss_positions[0] for e in examples))
        if p > 0:
            prefix = torch.tensor([examples[0].input_ids[:p]])
            examples = cut_prefix(examples, p)
    per_step = cfg.batch_size * cfg.grad_accum
    cap = cfg.steps or max(1, math.ceil(cfg.epochs * len(examples) / per_step))
    model = prepare_model(cfg)
    used = precision.resolve(cfg.precision, model.device.type, option="precision" if cfg.autocast is None else "autocast")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    schedule = Schedule(cap, cfg.warmup, cfg.schedule, cfg.warmup_min_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    ids = (prompts.single_token(tok, " true"), prompts.single_token(tok, " false"))
    # stage 1, masked: both the token loss and its binary part are computed (one head row each); the
    # objective picks the one trained, the binary part is what the prior check reads
    two_part = cfg.stage == "s1" and cfg.loss == "masked" and cfg.logits == "masked"
    if two_part:
        def loss_fn(m, b):
            token, binary = value_ce(m, b, *ids)
            return (binary if cfg.objective == "binary" else token), binary
    else:
        plain = masked_loss if cfg.logits == "masked" else full_logits_loss
        loss_fn = lambda m, b: (plain(m, b), None)  # noqa: E731
    make_batches = {"length": length_batches, "balanced": balanced_batches, "document": document_batches}[cfg.batches]
    autocast = precision.autocast(used, model.device.type)

    def with_prefix(batch):
        if prefix is not None:
            batch["prefix_ids"] = prefix
        return batch

    say = status or (lambda text: None)
    start = time.perf_counter()
    validator = Validator(tok, val_pairs, cfg.max_doc_tokens) if val_pairs else None
    curve, best, best_state, stale, val_seconds = [], None, None, 0, 0.0
    rate = budget_plan = None
    steps, budget_s, grown = cap, cfg.time_budget, False
    if cfg.time_budget:  # measured before any validation or step: a budget that cannot hold a useful run stops here
        from .budget import how, measure_rate, plan

        say("measuring this machine's step rate")
        rows = sorted(examples, key=lambda e: len(e.input_ids))
        mid = len(rows) // 2
        sample = rows[max(0, mid - cfg.batch_size // 2):][:cfg.batch_size]  # a full batch of median rows
        probe_batch = with_prefix(collate(sample, tok.pad_token_id))
        rate = measure_rate(model, loss_fn, probe_batch, autocast, precision.bf16_slowdown(used, model.device.type))
        mean_step = cfg.grad_accum * cfg.batch_size * sum(len(e.input_ids) for e in examples) / len(examples)
        val_tokens = validator.token_count() if validator else 0
        budget_plan = plan(cfg, cap, rate, mean_step, val_tokens, time.perf_counter() - start, used)
        steps = schedule.total = max(1, budget_plan["steps"])
        budget_s = budget_plan["budget_s"]
        grown = "grown_from" in budget_plan
        if grown or cfg.target_auc:  # held to its minimum steps, or it may go on: no decay to waste them
            schedule.kind = "constant"  # (a cosine decay over 40 steps left R8 at validation AUC 0.56)
        if log:
            val = f", ~{budget_plan['validation_s']:.0f} s per validation" if validator else ""
            why = (f" (grown from {cfg.time_budget:.0f} s: this machine needs it for {steps} steps)"
                   if grown else "")
            log(f"{cfg.stage}: time budget {budget_s:.0f} s{why}: ~{budget_plan['step_s']:.1f} s per step{val} "
                f"{how(rate)}, {used} → {steps} steps planned (the epochs limit allows {cap})")

    def validate(step: int) -> float:
        nonlocal best, best_state, stale, val_seconds
        say(f"validating {len(val_pairs)} pairs")
        t = time.perf_counter()
        with autocast:  # the precision graders resolve to on this machine: the threshold fits their scores
            auc = validator(model)
        val_seconds += time.perf_counter() - t
        say("training")
        curve.append({"step": step, "auc": round(auc, 4), "seconds": round(time.perf_counter() - start, 1)})
        if best is None or auc > best["auc"] + 1e-3:
            best, best_state, stale = {"step": step, "auc": auc, "scores": list(validator.scores)}, lora_state(model), 0
        else:
            stale += 1
        return auc

    val_auc = validate(0) if validator else None
    losses, binary_losses, seen, batches, step_times, stopped = [], [], 0, [], [], None
    step_tokens, planned = [], []  # padded tokens run per step; per batch of the current epoch's plan
    step, extended = 0, []  # the steps at which a run below target_auc was extended
    say("training")
    while step < steps:
        t0 = time.perf_counter()
        total = total_binary = 0.0
        tokens = 0
        for _ in range(cfg.grad_accum):
            if not batches:
                batches = make_batches(examples, cfg.batch_size, rng)
                planned = [len(b) * max(len(e.input_ids) for e in b) for b in batches]
            batch = with_prefix(collate(batches.pop(), tok.pad_token_id))
            with autocast:
                loss, binary = loss_fn(model, batch)
            (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
            total_binary += binary.item() / cfg.grad_accum if binary is not None else 0.0
            seen += batch["input_ids"].shape[0]
            tokens += batch["input_ids"].numel()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(check_loss(total, step + 1))
        if two_part:
            binary_losses.append(total_binary)
        step += 1
        step_times.append(time.perf_counter() - t0)
        step_tokens.append(tokens)
        if cfg.time_budget and step == PROBE_STEPS and steps > step:
            steps = schedule.total = budget_steps(cfg, cap, step_times, val_seconds / max(1, len(curve)),
                                                  time.perf_counter() - start, step_tokens,
                                                  cfg.grad_accum * sum(planned) / len(planned), budget_s)
            if grown:  # grown to hold the plan's steps, it runs them: slower steps than the probe's stretch the
                steps = schedule.total = budget_plan["steps"]  # budget (up to its maximum), faster ones end it sooner
                budget_s = cfg.time_budget_max  # (the user's budget was smaller; --target-auc may still add steps)
        if validator and (step % cfg.val_every == 0 or step == steps):
            val_auc = validate(step)
            tired = cfg.patience and stale >= cfg.patience  # no improvement for `patience` validations
            if tired and step < steps:
                stopped = f"validation AUC did not improve for {cfg.patience} validations"
            if step == steps and cfg.target_auc and best["auc"] < cfg.target_auc and steps < cap and not tired:
                more = min(cap, steps + cfg.val_every)  # below the target at the planned end: more steps, if they fit
                need = (more - step) * statistics.median(step_times[1:] or step_times) + val_seconds / len(curve)
                if time.perf_counter() - start + need <= cfg.time_budget_max:
                    extended.append(step)
                    if log:
                        log(f"{cfg.stage}: validation ROC-AUC {best['auc']:.3f} is below the target {cfg.target_auc} "
                            f"after {step} steps: {more - step} more steps")
                    steps = schedule.total = more
                    budget_s = cfg.time_budget_max
        # the last validation must fit too: stop when the budget cannot hold one more step and it
        last_val = val_seconds / len(curve) if validator else 0.0
        if cfg.time_budget and step < steps and \
                time.perf_counter() - start + step_times[-1] + last_val > budget_s:
            stopped = "time budget reached"
        if progress:
            progress(step, steps, losses[-1], val_auc)
        if stopped:
            break
    if validator and curve[-1]["step"] != step:
        validate(step)
    elapsed = time.perf_counter() - start
    if best_state is not None:
        load_lora_state(model, best_state)
    final_loss = sum(losses[-10:]) / len(losses[-10:])
    # the prior check reads the binary part (the token loss also pays for mass on other tokens)
    final_binary = sum(binary_losses[-10:]) / len(binary_losses[-10:]) if binary_losses else None
    prior = prior_entropy([e.label for e in examples]) if final_binary is not None else 0.0
    manifest = {
        "kind": f"{cfg.stage}-adapter",
        "key": config_key(cfg, dataset.train_pairs),
        "stage": cfg.stage,
        "base_model": cfg.base_model or lm.DEFAULT_MODEL,
        "init_adapter": cfg.init_adapter,
        "dataset": dataset.name,
        "data_hash": pairs_hash(dataset.train_pairs),
        "examples": len(examples),
        "masks": {"loss": cfg.loss, "weight": cfg.weight if cfg.loss == "weighted" else None,
                  "objective": cfg.objective if cfg.stage == "s1" else "token",
                  "target": {"s1": "relevant value", "s2": "reason value through closing brace and EOS"}[cfg.stage],
                  "mean_loss_tokens": sum(len(e.loss_positions) for e in examples) / len(examples)},
        "hyperparameters": {k: v for k, v in asdict(cfg).items() if k not in ("out", "stage", "autocast", "force")}
        | {"quant": cfg.resolved_quant(), "steps": steps, "steps_cap": cap, "precision_used": used,
           "schedule_used": schedule.kind},
        "machine": precision.machine(used),
        "budget": None if budget_plan is None else {**budget_plan, **rate},
        "metrics": {"first_loss": losses[0], "final_loss": final_loss,
                    "losses": [round(x, 5) for x in losses], "seconds": round(elapsed, 2),
                    "final_binary_loss": final_binary, "prior_entropy": prior,
                    "binary_losses": [round(x, 5) for x in binary_losses],
                    "steps_run": step, "stopped": stopped or "all steps run", "extended_at": extended,
                    "steps_per_s": step / elapsed, "examples_per_s": seen / elapsed,
                    "validation_seconds": round(val_seconds, 2)},
    }
    if validator:
        lo, hi = validator.interval(best["auc"])
        labels = validator.labels
        cut = youden_threshold(labels, best["scores"])
        from sklearn.metrics import balanced_accuracy_score

        manifest["validation"] = {
            "pairs": len(val_pairs), "documents": len({p.document for p in val_pairs}),
            "pair_ids_hash": pairs_hash(val_pairs), "base_auc": curve[0]["auc"], "best_step": best["step"],
            "best_auc": best["auc"], "best_auc_interval": [lo, hi], "curve": curve,
        }
        manifest["calibration"] = {
            "on": "validation", "pairs": len(val_pairs), "threshold": cut, "auc": best["auc"],
            "auc_low": round(lo, 4), "auc_high": round(hi, 4),
            "balanced_accuracy": float(balanced_accuracy_score(labels, [s >= cut for s in best["scores"]]))}
        reasons = verdict(final_binary or 0.0, prior, best["auc"], (lo, hi), loss_counts=False)
        note = loss_note(final_binary or 0.0, prior, best)
        if note:
            manifest["validation"]["training_loss_note"] = note
            if log:
                log(f"{cfg.stage}: note: {note}")
        if best["step"] == 0:
            reasons.append(f"no training step beat the base model's validation AUC {best['auc']:.3f}: "
                           "the saved adapter changes nothing")
        manifest["weak"] = bool(reasons)
        manifest["weak_reasons"] = reasons
    else:
        calibration = calibrate(model, tok, dataset.train_pairs, cfg.calibration_pairs, cfg.max_doc_tokens, cfg.seed)
        if calibration:
            manifest["calibration"] = calibration | {"on": "training"}
        if cfg.stage == "s1":
            reasons = verdict(final_binary or 0.0, prior, calibration["auc"] if calibration else None, None,
                              "training-pair")
            manifest["weak"], manifest["weak_reasons"] = bool(reasons), reasons
        elif lm.adapter_manifest(cfg.init_adapter).get("weak"):
            manifest["weak"] = True
            manifest["weak_reasons"] = [f"starts from the weak S1 adapter {cfg.init_adapter}"]
    save(model, tok, manifest, Path(cfg.out))
    return manifest


def budget_steps(cfg: TrainConfig, cap: int, step_times: list[float], val_cost: float, elapsed: float,
                 step_tokens: list[int] | None = None, mean_tokens: float | None = None,
                 budget_s: float | None = None) -> int:
    """Steps that fit the time budget, from the probe steps' time (the first one is warm-up) and the
    cost of validations; never more than ``cap`` (the epochs or --steps limit), never fewer than run.
    With ``step_tokens`` (padded tokens of each probe step) and ``mean_tokens`` (of an average step of
    the epoch's batches), the probe's time per token is scaled to the average step: a probe that drew
    the longest batches (long queries sort together) would otherwise plan far too few steps."""
    per_step = sum(step_times[1:]) / len(step_times[1:])
    if step_tokens and mean_tokens and sum(step_tokens[1:]):
        per_step = sum(step_times[1:]) / sum(step_tokens[1:]) * mean_tokens
    if cfg.val_pairs and cfg.stage == "s1":
        per_step += val_cost / cfg.val_every
    left = (budget_s or cfg.time_budget) - elapsed - val_cost  # the last validation
    return max(len(step_times), min(cap, len(step_times) + int(left / per_step)))


def save(model, tokenizer, manifest: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def merge(adapter: str, out: str, base_model: str | None = None, force: bool = False) -> Path:
    """Fold the adapter into the base weights; save the merged model with its tokenizer (and a manifest)."""
    from .outputs import claim

    source = lm.adapter_manifest(adapter)
    if base_model is None:
        base = source.get("base_model")
        base_model = None if base == lm.DEFAULT_MODEL else base
    key = hashlib.sha256(json.dumps([source.get("key"), str(Path(adapter).resolve()), base_model]).encode()).hexdigest()[:16]
    claim(out, "merged-model", key, force)  # before the model loads
    model = lm.load_model(base_model, adapter=adapter).merge_and_unload()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    lm.load_tokenizer(adapter).save_pretrained(out)
    (Path(out) / "manifest.json").write_text(json.dumps(
        {"kind": "merged-model", "key": key, "adapter": str(adapter), "adapter_key": source.get("key"),
         "base_model": base_model or lm.DEFAULT_MODEL}, indent=2))
    return Path(out)
