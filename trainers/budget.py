"""A time budget the first step cannot eat: before training, one forward (no update) and one
forward+backward of a full batch of median-length rows measure this machine's rate (a few rows
would be scaled by tokens, but on a small CPU a small batch costs far more per token); the step count is planned from it, and a
budget that cannot hold a useful run is refused with the measured rate and the fix."""
from __future__ import annotations

import contextlib
import math
import time

import torch

from lorag_harness.backends import precision
from lorag_harness.errors import LoragError

MIN_VALIDATIONS = 2  # a useful stage-1 run reaches at least this many validations
MIN_STEPS = 20  # ... and, without validation, this many steps (never more than the epochs allow)


class BudgetTooSmall(LoragError):
    """The time budget cannot hold a useful run at this machine's measured rate (before training)."""

    def __init__(self, message: str, rate: dict):
        super().__init__(message)
        self.rate = rate


def measure_rate(model, loss_fn, batch: dict, autocast, slower_by: float | None = None) -> dict:
    """Seconds per padded token of a training step (forward + backward) and of a forward alone, on
    ``batch``; the gradients are dropped, the weights do not change. The forward runs first and warms up.
    With ``slower_by`` (bf16 asked for where the precision probe measured it that many times slower),
    the batch runs in float32 and the times are scaled by it: one such bf16 step can take minutes."""
    if slower_by:
        autocast = contextlib.nullcontext()
    tokens = batch["input_ids"].numel()

    def step():
        with autocast:
            loss, _ = loss_fn(model, batch)
        loss.backward()

    def forward():
        with torch.no_grad(), autocast:
            loss_fn(model, batch)

    times = []
    for fn in (forward, step):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    scale = slower_by or 1.0
    return {"train_s_per_token": scale * times[1] / tokens, "forward_s_per_token": scale * times[0] / tokens,
            "probe_seconds": round(sum(times), 2),
            **({"estimated": f"float32 times x {slower_by:.1f}, the precision probe's bf16/fp32 ratio"} if slower_by else {})}


def plan(cfg, cap: int, rate: dict, step_tokens: float, val_tokens: int, elapsed: float, used: str) -> dict:
    """Steps that fit ``cfg.time_budget`` at the measured rate; raises BudgetTooSmall when fewer than a
    useful run (MIN_VALIDATIONS validation intervals, or MIN_STEPS without validation; never more than
    ``cap``) fit. With ``cfg.time_budget_max``, a budget too small for ``cfg.min_steps`` (or a useful
    run) on this machine grows to hold them, up to that maximum; the plan's ``budget_s`` is the budget."""
    step_s = rate["train_s_per_token"] * step_tokens
    val_s = rate["forward_s_per_token"] * val_tokens
    per_step = step_s + (val_s / cfg.val_every if val_tokens else 0.0)
    fixed = elapsed + 2 * val_s  # the base model's validation and the last one
    fit = max(0, int((cfg.time_budget - fixed) / per_step))
    useful = min(cap, MIN_VALIDATIONS * cfg.val_every if val_tokens else MIN_STEPS)
    wanted = max(useful, min(cap, cfg.min_steps))
    out = {"step_s": step_s, "validation_s": val_s, "fits": fit, "steps": min(cap, fit), "useful": useful,
           "budget_s": cfg.time_budget}
    grow_to = cfg.time_budget_max
    if fit < wanted and grow_to:
        need = fixed + wanted * per_step
        if need <= grow_to:
            return out | {"steps": wanted, "budget_s": math.ceil(need), "grown_from": cfg.time_budget}
    if fit >= useful:
        return out
    need = fixed + useful * per_step
    fixes = []
    slower = precision.bf16_slowdown(used)
    if slower:
        fixes.append(f"--precision fp32 (bf16 measured {slower:.0f}x slower than fp32 here)")
    fixes += [f"a bigger --time-budget (at least {math.ceil(need / 60)}m here)",
              f"a smaller --batch-size (now {cfg.batch_size})"]
    if val_tokens:
        fixes.append(f"fewer --val-pairs (now {cfg.val_pairs})")
    fixes.append("or --steps N to run a fixed count without a budget")
    val = f", {val_s:.1f} s per validation" if val_tokens else ""
    most = f" (grown to its maximum, {grow_to:.0f} s)" if grow_to else ""
    holds = max(fit, int((grow_to - fixed) / per_step)) if grow_to else fit
    raise BudgetTooSmall(
        f"{cfg.stage}: the {cfg.time_budget:.0f} s time budget{most} holds {holds} steps at this machine's {how(rate)} "
        f"{step_s:.1f} s per step (batch {cfg.batch_size}, {used}{val}); a useful run needs {useful}. "
        f"Fix: {'; '.join(fixes)}", out)


def how(rate: dict) -> str:
    """How the rate was found: measured, or estimated from a float32 step (bf16 where it is slow)."""
    return "estimated from a float32 step x the probe's bf16 ratio" if rate.get("estimated") else "measured"
