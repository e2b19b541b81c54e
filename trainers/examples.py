"""Training examples: chat prompt + target JSON, with loss masks computed from token offsets."""
from __future__ import annotations

import json
from dataclasses import dataclass

from lorag_harness.backends import prompts
from lorag_harness.data.pairs import reference_summary
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Dataset, Pair

STAGES = ("s1", "s2")
LOSS_MODES = ("masked", "full", "weighted")


@dataclass
class Example:
    input_ids: list[int]
    weights: list[float]  # loss weight of each token (0: no loss), aligned with input_ids
    label: bool
    group: str = ""  # the document it comes from (pairs of one document can share a batch)

    @property
    def loss_positions(self) -> list[int]:
        return [i for i, w in enumerate(self.weights) if w > 0]


def reason_for(pair: Pair, dataset: Dataset | None) -> dict:
    """The reference reason of a pair: from the dataset, else built from its topics and lead."""
    ref = dataset.references.get(pair.pair_id) if dataset else None
    if ref:
        return ref
    if not (pair.query_topic and pair.document_topic):
        raise LoragError(f"pair {pair.pair_id}: stage s2 needs query_topic and document_topic to build a reason")
    return {"query_topic": pair.query_topic, "document_topic": pair.document_topic,
            "summary": reference_summary(pair.document, pair.document_topic)}


def char_spans(target: str) -> dict[str, tuple[int, int]]:
    """Character spans, inside the target JSON, of the relevant value and of the reason value."""
    obj = json.loads(target)
    head = '{"relevant": '
    if not target.startswith(head):
        raise ValueError("target JSON must start with the relevant key")
    value = json.dumps(obj["relevant"])
    spans = {"relevant": (len(head), len(head) + len(value)), "json": (0, len(target))}
    key = '"reason": '
    at = target.find(key)
    if at >= 0:
        spans["reason"] = (at + len(key), len(target))
    return spans


def encode(tokenizer, pair: Pair, reason: dict | None, stage: str, loss: str = "masked",
           weight: float = 5.0, max_doc_tokens: int | None = 160, trim: bool = True) -> Example:
    """Tokenise prompt + target + EOS once; a token carries loss when its character span
    overlaps the stage's target span (stage 1: the relevant value; stage 2: the reason value,
    through the closing brace and EOS)."""
    if stage not in STAGES or loss not in LOSS_MODES:
        raise LoragError(f"stage must be one of {STAGES} and loss one of {LOSS_MODES}")
    doc = prompts.clip_document(tokenizer, pair.document, max_doc_tokens)
    prefix = prompts.chat_prefix(tokenizer, pair.query, doc)
    target = prompts.target_json(pair.label, reason)
    text = prefix + target + tokenizer.eos_token
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    spans = {k: (a + len(prefix), b + len(prefix)) for k, (a, b) in char_spans(target).items()}
    spans["json"] = (spans["json"][0], len(text))  # the whole answer, EOS included
    if stage == "s2":
        if "reason" not in spans:
            raise LoragError("stage s2 needs a reason in the target")
        spans["reason"] = (spans["reason"][0], len(text))
    span_of = {"s1": spans["relevant"], "s2": spans.get("reason")}[stage]

    def overlaps(off, span):
        return off[1] > span[0] and off[0] < span[1] and off[1] > off[0]

    weights = []
    for off in enc["offset_mapping"]:
        if loss == "masked":
            w = 1.0 if overlaps(off, span_of) else 0.0
        else:  # full LM loss over the answer; "weighted" up-weights the stage's span
            w = 1.0 if overlaps(off, spans["json"]) else 0.0
            if loss == "weighted" and overlaps(off, span_of):
                w = weight
        weights.append(w)
    if not any(weights):
        raise LoragError(f"pair {pair.pair_id}: no token carries loss (truncated?)")
    # tokens after the last one with loss cannot change it (causal attention): drop them
    end = max(i for i, w in enumerate(weights) if w > 0) + 1 if trim else len(weights)
    return Example(enc["input_ids"][:end], weights[:end], pair.label, pair.document)


def build_examples(tokenizer, pairs: list[Pair], dataset: Dataset | None, stage: str, loss: str = "masked",
                   weight: float = 5.0, max_doc_tokens: int | None = 160, trim: bool = True) -> list[Example]:
    # stage 1 still writes the reason into the target text, so both stages see the same sequence
    return [encode(tokenizer, p, reason_for(p, dataset) if stage == "s2" or _has_ref(p, dataset) else None,
                   stage, loss, weight, max_doc_tokens, trim) for p in pairs]


def _has_ref(pair: Pair, dataset: Dataset | None) -> bool:
    return bool(dataset and pair.pair_id in dataset.references)
