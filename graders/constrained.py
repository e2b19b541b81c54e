"""Constrained reason decoding: lm-format-enforcer's JSON-schema parser drives transformers'
``prefix_allowed_tokens_fn``, so the reason is valid JSON with topics from the label set.

lm-format-enforcer's own transformers module imports a path transformers 5 removed, so the
tokenizer data is built here from its documented parts (the same recipe as its integration).
"""
from __future__ import annotations

from functools import lru_cache

import torch


def reason_schema(topics: list[str]) -> dict:
    topic = {"type": "string", "enum": sorted(set(topics))} if topics else {"type": "string"}
    return {
        "type": "object",
        "properties": {"query_topic": topic, "document_topic": topic, "summary": {"type": "string"}},
        "required": ["query_topic", "document_topic", "summary"],
        "additionalProperties": False,
    }


@lru_cache(maxsize=4)
def _tokenizer_data(tokenizer):
    from lmformatenforcer import TokenEnforcerTokenizerData

    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for i in range(len(tokenizer)):
        if i in special:
            continue
        # decoding after "0" keeps a word-initial space that decoding alone would drop
        after_zero = tokenizer.decode([zero, i], clean_up_tokenization_spaces=False)[1:]
        if "\ufffd" in after_zero:  # a partial UTF-8 byte: its text is unknown until the next token
            continue
        regular.append((i, after_zero, len(after_zero) > len(tokenizer.decode([i], clean_up_tokenization_spaces=False))))
    return TokenEnforcerTokenizerData(regular, lambda ids: tokenizer.decode(ids, clean_up_tokenization_spaces=False).rstrip("\ufffd"),
                                      tokenizer.eos_token_id, False, len(tokenizer))


def answer_schema(topics: list[str]) -> dict:
    return {"type": "object", "properties": {"relevant": {"type": "boolean"}, "reason": reason_schema(topics)},
            "required": ["relevant", "reason"], "additionalProperties": False}


def _settings(config):
    """Fields in schema order, no runs of whitespace."""
    config.force_json_field_order = True
    config.max_consecutive_whitespaces = 1
    return config


class ReasonConstraint:
    """``prefix_allowed_tokens_fn`` for generate(): the whole answer's schema, its parser fed
    the prefilled head (``{"relevant": true, "reason":``), so the model writes the reason object
    (fields in schema order, the summary last), the closing brace and EOS. The parser stays the
    top-level one: lm-format-enforcer then reuses one token list for free text instead of
    walking the vocabulary at every step."""

    def __init__(self, tokenizer, topics: list[str], head: str):
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer

        parser = JsonSchemaParser(answer_schema(topics), _settings(CharacterLevelParserConfig()))
        for ch in head:
            parser = parser.add_character(ch)
        self.enforcer = TokenEnforcer(_tokenizer_data(tokenizer), parser)
        _settings(parser.config)  # TokenEnforcer swapped in its own config (the tokenizer's alphabet)

    def __call__(self, batch_id: int, sent: torch.Tensor) -> list[int]:
        return self.enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens


def close_summary(text: str) -> str:
    """A constrained answer cut by the token budget can only stop inside the summary (the
    last field): close the string and both objects."""
    return text.rstrip("\\") + '"}}'
