"""After training: the P(true) threshold that best separates the classes on training pairs.

Stage 2 puts no loss on the relevant value, but its LoRA update still shifts P(true) for every
pair (it keeps the ranking, not the 0.5 crossing), so each adapter carries its own threshold."""
from __future__ import annotations

import random

import numpy as np

from lorag_harness.backends import prompts
from lorag_harness.api.types import Pair


def youden_threshold(labels: list[bool], scores: list[float]) -> float:
    """The score cut with the largest TPR - FPR (balanced accuracy)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, cuts = roc_curve(np.asarray(labels, dtype=int), np.asarray(scores))
    return float(min(cuts[int(np.argmax(tpr - fpr))], 1.0))


def calibrate(model, tokenizer, pairs: list[Pair], n: int, max_doc_tokens: int | None, seed: int,
              batch_size: int = 16) -> dict | None:
    """Threshold, AUC and balanced accuracy on ``n`` sampled training pairs (None with one class only)."""
    sample = random.Random(seed).sample(pairs, min(n, len(pairs)))
    labels = [p.label for p in sample]
    if n <= 0 or len(set(labels)) < 2:
        return None
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    seqs = [prompts.encode(tokenizer, p.query, p.document, prompts.PREFILL, max_doc_tokens) for p in sample]
    ids = [prompts.single_token(tokenizer, t) for t in (" true", " false")]
    was_training = model.training
    model.eval()
    from lorag_harness.graders.lm_scoring import score_true_false  # torch: only when scoring

    scores = score_true_false(model, seqs, *ids, tokenizer.pad_token_id, batch_size)
    model.train(was_training)
    from lorag_harness.evaluation.calibration import auc_interval

    cut = youden_threshold(labels, scores)
    _, low, high = auc_interval(labels, scores)
    return {"pairs": len(sample), "threshold": cut, "auc": float(roc_auc_score(labels, scores)),
            "auc_low": round(low, 4), "auc_high": round(high, 4),
            "balanced_accuracy": float(balanced_accuracy_score(labels, [s >= cut for s in scores]))}
