"""Scoring with a KV cache of the prompt prefix shared by many pairs.

The prefix is the longest common token prefix of a group (the system instruction, and for
RAG the query), so the cached run is exactly the full run, only without recomputing it."""
from __future__ import annotations

from collections import defaultdict

import torch

from .lm_scoring import left_pad, length_sorted_batches, p_true


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest common prefix, leaving at least one token to each sequence."""
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return max(n, 0)


def plan_groups(seqs: list[list[int]], keys: list, min_group: int) -> list[list[int]]:
    """Group sequence indices by key (e.g. the query); groups smaller than ``min_group`` are pooled,
    sharing only what is common to all of them (the instruction)."""
    by_key = defaultdict(list)
    for i, k in enumerate(keys):
        by_key[k].append(i)
    groups = [g for g in by_key.values() if len(g) >= min_group]
    pooled = [i for g in by_key.values() if len(g) < min_group for i in g]
    return groups + ([pooled] if pooled else [])


def _expand(cache, rows: int):
    from transformers import DynamicCache

    data = [(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1)) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=data)


@torch.inference_mode()
def score_with_prefix_cache(model, seqs: list[list[int]], keys: list, true_id: int, false_id: int, pad_id: int,
                            batch_size: int = 8, advance=None, stats: dict | None = None) -> list[float]:
    """Like ``score_true_false`` but the shared prefix of each group is run once."""
    out = [0.0] * len(seqs)
    tokens = 0
    for group in plan_groups(seqs, keys, max(2, batch_size // 2)):
        members = [seqs[i] for i in group]
        p = common_prefix(members) if len(members) > 1 else 0
        prefix_cache = None
        if p:
            prefix = torch.tensor([members[0][:p]])
            prefix_cache = model(input_ids=prefix, use_cache=True).past_key_values
            tokens += p
        suffixes = [s[p:] for s in members]
        for batch in length_sorted_batches([len(s) for s in suffixes], batch_size):
            ids, mask = left_pad([suffixes[j] for j in batch], pad_id)
            tokens += int(mask.sum())
            pos = p + (mask.cumsum(-1) - 1).clamp(min=0)
            if prefix_cache is not None:
                full_mask = torch.cat([torch.ones((len(batch), p), dtype=mask.dtype), mask], dim=1)
                logits = model(input_ids=ids, attention_mask=full_mask, position_ids=pos,
                               past_key_values=_expand(prefix_cache, len(batch)), use_cache=True, logits_to_keep=1).logits
            else:
                logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits
            for j, prob in zip(batch, p_true(logits, true_id, false_id)):
                out[group[j]] = prob
            if advance:
                advance(len(batch))
    if stats is not None:
        stats["tokens"] = stats.get("tokens", 0) + tokens
    return out
