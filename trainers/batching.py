"""Length-sorted batches with dynamic padding, and class balancing."""
from __future__ import annotations

import random

import torch

from .examples import Example


def balance(examples: list[Example], mode: str, rng: random.Random) -> list[Example]:
    """``over``: repeat the minority class; ``under``: drop from the majority; ``both``: meet half-way
    (the minority repeated and the majority sampled down to the mean of the two counts); ``none``: as is."""
    if mode == "none":
        return list(examples)
    pos = [e for e in examples if e.label]
    neg = [e for e in examples if not e.label]
    if not pos or not neg:
        return list(examples)
    small, big = sorted((pos, neg), key=len)
    if mode == "over":
        extra = [small[i % len(small)] for i in range(len(big) - len(small))]
        return big + small + extra
    if mode == "under":
        return small + rng.sample(big, len(small))
    if mode == "both":
        n = (len(small) + len(big)) // 2
        return rng.sample(big, n) + [small[i % len(small)] for i in range(n)]
    raise ValueError(f"unknown balance mode {mode!r}: over, under, both or none")


def length_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffle, sort within windows of 50 batches by length, batch, shuffle the batches."""
    order = rng.sample(examples, len(examples))
    window = batch_size * 50
    batches = []
    for i in range(0, len(order), window):
        chunk = sorted(order[i : i + window], key=lambda e: len(e.input_ids))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and per-token loss weights (padding weighs 0)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    weights = torch.zeros((len(batch), width), dtype=torch.float32)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        weights[row, :n] = torch.tensor(e.weights)
    return {"input_ids": ids, "attention_mask": mask, "weights": weights}


def balanced_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Batches that are half positive, half negative (the smaller class is cycled), each half
    length-sorted within windows like ``length_batches``; falls back to those with one class only."""
    pos = [e for e in examples if e.label]
    neg = [e for e in examples if not e.label]
    half = batch_size // 2
    if not pos or not neg or half == 0:
        return length_batches(examples, batch_size, rng)
    n = max(len(pos), len(neg))

    def stream(group):
        order = [group[i % len(group)] for i in rng.sample(range(n), n)]
        window = half * 50
        return [e for i in range(0, n, window) for e in sorted(order[i : i + window], key=lambda e: len(e.input_ids))]

    p, q = stream(pos), stream(neg)
    batches = [p[i : i + half] + q[i : i + half] for i in range(0, n, half)]
    rng.shuffle(batches)
    return batches


def document_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Batches that keep the pairs of one document together (the pair builders give each document a
    relevant and an irrelevant query), so within a batch the same text is seen with both answers and
    only the query tells them apart; documents length-sorted within windows like ``length_batches``."""
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(e.group, []).append(e)
    docs = rng.sample(list(groups.values()), len(groups))
    window = batch_size * 50
    batches, current = [], []
    for i in range(0, len(docs), window):
        for g in sorted(docs[i : i + window], key=lambda g: len(g[0].input_ids)):
            if current and len(current) + len(g) > batch_size:
                batches.append(current)
                current = []
            current += g
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches
