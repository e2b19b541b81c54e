"""The grading prompt, shared by the LM graders and the trainers."""
from __future__ import annotations

import hashlib
import json

from lorag_harness.errors import LoragError

# Short on purpose: every prompt token is paid for on every pair graded and every training step.
SYSTEM = (
    'Is the document relevant to the query? Reply in JSON: {"relevant": true/false, '
    '"reason": {"query_topic": "", "document_topic": "", "summary": ""}}'
)
# Prefill ends on a token boundary: the next token is " true" or " false".
PREFILL = '{"relevant":'
REASON_PREFILL = '{{"relevant": {value}, "reason":'


def messages(query: str, document: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        # the document comes first, so the query sits right before the answer
        {"role": "user", "content": f"Document: {document}\nQuery: {query}"},
    ]


def clip_document(tokenizer, document: str, max_tokens: int | None) -> str:
    if not max_tokens:
        return document
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    return document if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def chat_prefix(tokenizer, query: str, document: str) -> str:
    """The chat-templated prompt up to the start of the assistant's answer."""
    return tokenizer.apply_chat_template(messages(query, document), tokenize=False, add_generation_prompt=True)


def encode(tokenizer, query: str, document: str, answer_prefix: str, max_doc_tokens: int | None) -> list[int]:
    """Token ids of the prompt (document clipped to its budget) followed by the answer's prefill."""
    text = chat_prefix(tokenizer, query, clip_document(tokenizer, document, max_doc_tokens)) + answer_prefix
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def single_token(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise LoragError(f"{text!r} is not a single token for this tokenizer")
    return ids[0]


def target_json(relevant: bool, reason: dict | None) -> str:
    """The answer a grader should give, in the exact form the trainers teach."""
    obj = {"relevant": bool(relevant)}
    if reason is not None:
        obj["reason"] = {k: reason[k] for k in ("query_topic", "document_topic", "summary")}
    return json.dumps(obj, ensure_ascii=False)


def template_hash() -> str:
    sample = json.dumps(messages("{q}", "{d}"))
    return hashlib.sha256((sample + PREFILL + REASON_PREFILL).encode()).hexdigest()[:16]
