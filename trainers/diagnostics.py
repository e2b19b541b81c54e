"""Training diagnostics: a validation slice held out of the training pairs (split by document),
its ROC-AUC of P(true) during training, and the verdict on a run that did not learn."""
from __future__ import annotations

import math
import random
import re

from lorag_harness.backends import prompts
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair

WEAK_AUC = 0.6  # validation AUC below this (or a 95% interval reaching 0.5) is a weak run
PRIOR_RATIO = 0.9  # final loss above this share of the label-prior entropy sits at the prior
WEAK_CAUSES = (
    "learning rate too low or too high (--lr)",
    "too few steps for the data (--steps, --epochs, --time-budget)",
    "documents clipped before the text that decides relevance (--max-doc-tokens)",
    "noisy or inconsistent labels (check the training pairs)",
)


def split_by_document(pairs: list[Pair], n: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training, validation): about ``n`` pairs of whole documents go to validation, so no document
    is on both sides; the slice holds both classes or is empty (too few pairs or documents)."""
    if n <= 0:
        return list(pairs), []
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.document, []).append(p)
    docs = sorted(groups)
    random.Random(seed).shuffle(docs)
    val, taken = [], set()
    for d in docs:
        if len(val) >= n or len(taken) >= len(docs) // 2:  # never more than half the documents
            break
        val += groups[d]
        taken.add(d)
    if len({p.label for p in val}) < 2:
        return list(pairs), []
    return [p for p in pairs if p.document not in taken], val


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a ROC-AUC from its standard error (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def prior_entropy(labels: list[bool]) -> float:
    """Cross-entropy (nats) of always answering the label prior: where a loss that learned nothing sits."""
    p = sum(labels) / len(labels)
    return 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))


class Validator:
    """ROC-AUC of P(true) on the validation slice, in eval mode (dropout off), no gradients."""

    def __init__(self, tokenizer, pairs: list[Pair], max_doc_tokens: int | None, batch_size: int = 32):
        self.labels = [p.label for p in pairs]
        self.queries = [p.query for p in pairs]
        self.seqs = [prompts.encode(tokenizer, p.query, p.document, prompts.PREFILL, max_doc_tokens) for p in pairs]
        self.ids = (prompts.single_token(tokenizer, " true"), prompts.single_token(tokenizer, " false"),
                    tokenizer.pad_token_id)
        self.batch_size = batch_size
        self.scores: list[float] = []

    def token_count(self) -> int:
        """Tokens one validation runs (the shared instruction prefix once)."""
        from lorag_harness.graders.prefix_cache import common_prefix

        p = common_prefix(self.seqs) if len(self.seqs) > 1 else 0
        return sum(len(s) - p for s in self.seqs) + p

    def __call__(self, model) -> float:
        from sklearn.metrics import roc_auc_score

        from lorag_harness.graders.prefix_cache import score_with_prefix_cache

        was_training = model.training
        model.eval()
        try:  # the graders' own scoring: the shared instruction prefix is run once (same numbers)
            self.scores = score_with_prefix_cache(model, self.seqs, self.queries, *self.ids, self.batch_size)
        finally:
            model.train(was_training)
        return float(roc_auc_score(self.labels, self.scores))

    def interval(self, auc: float) -> tuple[float, float]:
        pos = sum(self.labels)
        return hanley_mcneil(auc, pos, len(self.labels) - pos)


def at_prior(final_loss: float, prior: float) -> bool:
    """The final loss did not go below PRIOR_RATIO x the label prior's entropy (what answering the prior costs)."""
    return prior > 0 and final_loss >= PRIOR_RATIO * prior


def verdict(final_loss: float, prior: float, val_auc: float | None, interval: tuple[float, float] | None,
            where: str = "validation", loss_counts: bool = True) -> list[str]:
    """Reasons a stage-1 run counts as weak (empty: it learned). ``loss_counts=False`` where a held-out
    validation slice judges the saved state: a 10-batch mean of the training loss is noisy evidence
    beside held-out AUC with its interval."""
    reasons = []
    if loss_counts and at_prior(final_loss, prior):
        reasons.append(f"final loss {final_loss:.3f} did not go below the label prior's entropy {prior:.3f} "
                       "(what answering the class prior, not the pair, costs)")
    if val_auc is not None and (val_auc < WEAK_AUC or (interval and interval[0] <= 0.5)):
        ci = f" (95% {interval[0]:.3f}–{interval[1]:.3f})" if interval else ""
        reasons.append(f"best {where} ROC-AUC {val_auc:.3f}{ci} is near chance "
                       f"(needs ≥ {WEAK_AUC}" + (" with the interval above 0.5)" if interval else ")"))
    return reasons


def loss_note(final_loss: float, prior: float, best: dict) -> str | None:
    """A line for a validated run whose last steps' loss sat at the label prior (not a weak reason:
    its validation judges it)."""
    if at_prior(final_loss, prior):
        return (f"the last 10 steps' binary loss {final_loss:.3f} is not below {PRIOR_RATIO} x the label prior's "
                f"entropy {prior:.3f}; the adapter saved is the best validated state (step {best['step']}, "
                f"validation ROC-AUC {best['auc']:.3f})")
    return None


def parse_duration(text: str | float | None, option: str = "--time-budget") -> float | None:
    """Seconds from '90s', '10m', '1.5h' or a bare number of seconds; one clear error otherwise."""
    if text is None or isinstance(text, (int, float)):
        if text is not None and (not math.isfinite(text) or text <= 0):
            raise LoragError(f"{option} must be positive, not {text!r}")
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise LoragError(f"{option} {text!r}: give a positive duration such as 90s, 10m or 1.5h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
