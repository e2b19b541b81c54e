"""Graders as RL rewards (R3-RAG style): TRL reward functions from grader specs.

    from lorag_harness.serving.rewards import relevance_reward
    reward = relevance_reward("s1:adapters/s1")           # any grader spec: base, embedding, openai:MODEL, ...
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds)   # ds has a "query" column

The reward of a completion is P(relevant) of the pair (query, completion): how relevant the
generated text is to the query. With ``document_column`` the completion is the query instead
(e.g. a generated search query), graded against that column's document. A pair the grader could
not judge (a failed request) gets ``None``, which TRL leaves out of the reward.
"""
from __future__ import annotations

from typing import Callable

from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair


__all__ = ["relevance_reward", "reward_value", "completion_text", "prompt_query"]

def completion_text(completion) -> str:
    """The text of a completion: a string, or a conversation (list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise LoragError(f"reward: a completion must be a string or a list of messages, not {type(completion).__name__}")


def prompt_query(prompt) -> str:
    """The query when no column gives it: the last user message, or the whole prompt text."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return completion_text(users[-1:] or prompt)
    return str(prompt)


def reward_value(judgment) -> float | None:
    if judgment.score is not None and 0.0 <= judgment.score <= 1.0:
        return float(judgment.score)
    if judgment.relevant is None:
        return None
    return float(judgment.relevant)  # graders without a probability: 1 or 0


def relevance_reward(grader_spec: str | object, *, query_column: str = "query", document_column: str | None = None,
                     **context) -> Callable[..., list[float | None]]:
    """A TRL reward function ``reward(prompts, completions, **columns) -> list[float | None]``.

    ``grader_spec`` is a grader spec (built with :class:`lorag_harness.api.registry.GraderContext`
    fields from ``context``: ``base_model``, ``embedder``, ``dataset``, ``batch_size``,
    ``max_doc_tokens``, ``quant``, ``options``) or a grader object. The query comes from the
    ``query_column`` dataset column when present, else from the prompt."""
    if isinstance(grader_spec, str):
        from lorag_harness.api.registry import GraderContext
        from lorag_harness.evaluation.runner import build_grader

        try:
            grader = build_grader(grader_spec, GraderContext(**context))
        except TypeError as e:
            raise LoragError(f"relevance_reward: {e}") from None
    else:
        grader = grader_spec
    if not callable(getattr(grader, "grade", None)):
        raise LoragError("relevance_reward needs a grader spec or an object with grade()")

    def reward(prompts, completions, **kwargs) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        if document_column is not None:
            if document_column not in kwargs:
                raise LoragError(f"reward: the dataset has no column {document_column!r} "
                                 f"(columns: {', '.join(sorted(kwargs)) or 'none'})")
            pairs = [Pair(t, str(d), False) for t, d in zip(texts, kwargs[document_column])]
        else:
            queries = kwargs.get(query_column) or [prompt_query(p) for p in prompts]
            pairs = [Pair(str(q), t, False) for q, t in zip(queries, texts)]
        if len(pairs) != len(texts):
            raise LoragError(f"reward: {len(texts)} completions but {len(pairs)} queries or documents")
        from lorag_harness.api.grader import grade_checked

        judgments = grade_checked(grader, pairs)
        return [reward_value(j) for j in judgments]

    reward.__name__ = "relevance_" + "".join(c if c.isalnum() else "_" for c in getattr(grader, "name", "grader"))
    reward.grader = grader
    return reward
