"""Batched relevance scoring and reason generation with a causal LM."""
from __future__ import annotations

import torch

from lorag_harness.backends.output_parsing import balanced_end


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[row, width - len(s) :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def p_true(logits: torch.Tensor, true_id: int, false_id: int) -> list[float]:
    """P(" true") / (P(" true") + P(" false")) from the last position's logits."""
    return torch.softmax(logits[:, -1, [true_id, false_id]].float(), dim=-1)[:, 0].tolist()


@torch.inference_mode()
def score_true_false(model, seqs: list[list[int]], true_id: int, false_id: int, pad_id: int,
                     batch_size: int = 8, advance=None) -> list[float]:
    """P(" true") / (P(" true") + P(" false")) at the end of each sequence."""
    out = [0.0] * len(seqs)
    for batch in length_sorted_batches([len(s) for s in seqs], batch_size):
        ids, mask = left_pad([seqs[i] for i in batch], pad_id)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=1).logits
        for i, p in zip(batch, p_true(logits, true_id, false_id)):
            out[i] = p
        if advance:
            advance(len(batch))
    return out


class BraceStop:
    """Stopping criterion: a row is done once its new text closes the open reason object."""

    def __init__(self, tokenizer, prompt_width: int, opened: int = 1):
        self.tok, self.width, self.opened = tokenizer, prompt_width, opened

    def __call__(self, input_ids, scores, **kwargs):
        done = []
        for row in input_ids[:, self.width :]:
            text = "{" * self.opened + self.tok.decode(row, skip_special_tokens=True)
            done.append(balanced_end(text) is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def generate_continuations(model, tokenizer, seqs: list[list[int]], max_new_tokens: int = 64,
                           batch_size: int = 8, opened: int = 1, advance=None, allowed_tokens=None) -> list[str]:
    """Greedy continuations (batched, left-padded, KV-cached) stopping at the closing brace;
    ``allowed_tokens`` is a ``prefix_allowed_tokens_fn`` for constrained decoding."""
    from transformers import StoppingCriteriaList

    out = [""] * len(seqs)
    for batch in length_sorted_batches([len(s) for s in seqs], batch_size):
        ids, mask = left_pad([seqs[i] for i in batch], tokenizer.pad_token_id)
        gen = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList([BraceStop(tokenizer, ids.shape[1], opened)]),
            prefix_allowed_tokens_fn=allowed_tokens,
        )
        for i, row in zip(batch, gen[:, ids.shape[1] :]):
            out[i] = tokenizer.decode(row, skip_special_tokens=True)
        if advance:
            advance(len(batch))
    return out
