"""Parsing and validating grader output against the output schema."""
from __future__ import annotations

import json

from lorag_harness.api.types import REASON_FIELDS


def first_json_object(text: str) -> tuple[dict | None, str]:
    """The first JSON object in ``text`` and the text it spans ("" if none)."""
    start = text.find("{")
    if start < 0:
        return None, ""
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None, ""
    return (obj, text[start:end]) if isinstance(obj, dict) else (None, "")


def valid_reason(reason) -> bool:
    return isinstance(reason, dict) and all(isinstance(reason.get(k), str) for k in REASON_FIELDS)


def complete_reason(reason) -> bool:
    return valid_reason(reason) and all(reason[k].strip() for k in REASON_FIELDS)


def parse_output(text: str, need_reason: bool = True) -> tuple[dict | None, bool]:
    """``(object, ok)``: ok when the text holds a JSON object of the output schema."""
    obj, _ = first_json_object(text)
    if obj is None or not isinstance(obj.get("relevant"), bool):
        return obj, False
    if need_reason and not valid_reason(obj.get("reason")):
        return obj, False
    return obj, True


def balanced_end(text: str) -> int | None:
    """Index just past the brace closing the first object in ``text``, ignoring braces in strings."""
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None
