"""Weighted next-token loss, computing logits only where the loss needs them."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _parts(model):
    """(backbone, lm_head) of a causal LM, through a peft wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.base_model is base:
        raise TypeError(f"{type(base).__name__} has no separate backbone to run without its lm_head")
    return base.base_model, base.get_output_embeddings()


def hidden_states(backbone, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The backbone's last hidden states of the batch's rows. With ``batch["prefix_ids"]`` (the token
    prefix every row shares, cut from ``input_ids``; rows right-padded), the prefix is run once (batch
    1) with gradients and its KV cache expanded over the rows as views, so autograd sums the rows'
    gradients back into the one prefix pass: the loss and its gradient are those of the full rows."""
    prefix = batch.get("prefix_ids")
    if prefix is None:
        return backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    from lorag_harness.graders.prefix_cache import _expand

    rows, p = batch["input_ids"].shape[0], prefix.shape[1]
    cache = backbone(input_ids=prefix, use_cache=True).past_key_values
    mask = batch["attention_mask"]
    full_mask = torch.cat([torch.ones((rows, p), dtype=mask.dtype), mask], dim=1)
    positions = p + (mask.cumsum(-1) - 1).clamp(min=0)
    return backbone(input_ids=batch["input_ids"], attention_mask=full_mask, position_ids=positions,
                    past_key_values=_expand(cache, rows), use_cache=True).last_hidden_state


def masked_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Hidden states -> lm_head on the positions whose next token carries loss only."""
    backbone, head = _parts(model)
    hidden = hidden_states(backbone, batch)
    w = batch["weights"][:, 1:]  # position t predicts token t+1
    rows, cols = torch.nonzero(w > 0, as_tuple=True)
    logits = head(hidden[rows, cols]).float()
    targets = batch["input_ids"][rows, cols + 1]
    weights = w[rows, cols]
    return (F.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum()


def full_logits_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The naive way, for comparison: logits over every position, then the same weighting."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    w = batch["weights"][:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["input_ids"][:, 1:].reshape(-1), reduction="none")
    return (ce * w.reshape(-1)).sum() / w.sum()



def value_ce(model, batch: dict[str, torch.Tensor], true_id: int, false_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1 (one loss token per row, the relevant value): (token loss over the vocabulary, binary loss
    over the " true"/" false" logits). The token loss is the binary one plus -log(P(true) + P(false)),
    the mass the model puts on other tokens, which the graders never read."""
    backbone, head = _parts(model)
    hidden = hidden_states(backbone, batch)
    w = batch["weights"][:, 1:]
    rows, cols = torch.nonzero(w > 0, as_tuple=True)
    targets = batch["input_ids"][rows, cols + 1]
    if not bool(((targets == true_id) | (targets == false_id)).all()):
        raise ValueError("the binary objective needs every loss token to be ' true' or ' false' (stage s1, masked)")
    logits = head(hidden[rows, cols]).float()
    token = F.cross_entropy(logits, targets)
    binary = F.cross_entropy(logits[:, [true_id, false_id]], (targets == false_id).long())
    return token, binary

