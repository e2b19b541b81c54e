"""Embedding-similarity grader: cosine of query and document, threshold calibrated on train pairs."""
from __future__ import annotations

import json

import numpy as np

from lorag_harness.data.checks import require_both_labels
from lorag_harness.data.pairs import lead
from lorag_harness.embedder import DEFAULT_EMBEDDER, embed
from lorag_harness.api import Grader
from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl
from lorag_harness.model import Judgment, Pair

from lorag_harness.fingerprints import fingerprint, model_files


class EmbeddingGrader(Grader):
    """P(relevant) by logistic calibration of the cosine on the training pairs;
    topics are the nearest topic names, the summary the document's lead."""

    def __init__(self, name: str = "embedding", model: str | None = None, train_pairs=(), topics=None,
                 calibrate: bool = True, dataset: str | None = None):
        """``train_pairs`` need both labels; ``calibrate=False`` (asked for explicitly) skips the fit:
        P(relevant) = sigmoid(cosine), relevant above cosine 0."""
        self.name, self.model_name = name, model
        self.topics = dict(topics or {})
        if calibrate:
            require_both_labels(train_pairs, dataset, "the embedding grader (it calibrates its threshold)",
                                "give it training pairs of both labels (jsonl: a train.jsonl beside eval.jsonl, on documents "
                                "not in eval.jsonl, or "
                                "one pairs file that lorag splits), or in Python EmbeddingGrader(calibrate=False) "
                                "for the raw cosine")
            self.coef, self.intercept = self._calibrate(list(train_pairs))
        else:
            self.coef, self.intercept = 1.0, 0.0

    def _cosines(self, pairs: list[Pair]) -> np.ndarray:
        q = embed([p.query for p in pairs], self.model_name)
        d = embed([p.document for p in pairs], self.model_name)
        return np.sum(q * d, axis=1)

    def _calibrate(self, pairs: list[Pair]) -> tuple[float, float]:
        from sklearn.linear_model import LogisticRegression

        x = self._cosines(pairs).reshape(-1, 1)
        y = np.array([p.label for p in pairs], dtype=int)
        clf = LogisticRegression(C=100.0).fit(x, y)
        return float(clf.coef_[0, 0]), float(clf.intercept_[0])

    @property
    def threshold(self) -> float:
        """The cosine at which P(relevant) = 0.5."""
        return -self.intercept / self.coef

    def fingerprint(self) -> str:
        return fingerprint(kind="embedding", model=self.model_name or DEFAULT_EMBEDDER,
                           **model_files(self.model_name, DEFAULT_EMBEDDER),
                           coef=round(self.coef, 6), intercept=round(self.intercept, 6), topics=self.topics)

    def grade(self, pairs: list[Pair], *, reasons: bool = False, advance=None) -> list[Judgment]:
        cos = self._cosines(pairs)
        probs = 1.0 / (1.0 + np.exp(-(self.coef * cos + self.intercept)))
        out = [Judgment(relevant=bool(p >= 0.5), score=float(p), raw_text=f"cosine={c:.4f}") for p, c in zip(probs, cos)]
        if reasons:
            self._add_reasons(pairs, out)
            for j in out:
                j.raw_text = json.dumps(j.as_output())
        if advance:
            advance(len(pairs))
        return out

    def _add_reasons(self, pairs: list[Pair], out: list[Judgment]) -> None:
        names = list(self.topics.values()) or sorted({t for p in pairs for t in (p.query_topic, p.document_topic) if t})
        if not names:
            for j, p in zip(out, pairs):
                j.reason = {"query_topic": "", "document_topic": "", "summary": lead(p.document)}
            return
        t = embed(names, self.model_name)
        qt = np.argmax(embed([p.query for p in pairs], self.model_name) @ t.T, axis=1)
        dt = np.argmax(embed([p.document for p in pairs], self.model_name) @ t.T, axis=1)
        for j, p, qi, di in zip(out, pairs, qt, dt):
            j.reason = {"query_topic": names[qi], "document_topic": names[di], "summary": lead(p.document)}


def make_embedding(arg, context):
    """Sentence-transformers cosine similarity, threshold calibrated on train pairs."""
    from lorag_harness.checks import check_embedder

    check_embedder(arg or context.embedder, f"grader embedding:{arg}" if arg else "--embedder")
    ds = context.dataset
    try:
        return EmbeddingGrader(
            "embedding" if not arg else f"embedding:{arg}",
            model=arg or context.embedder,
            train_pairs=ds.train_pairs if ds else (),
            topics=ds.topics if ds else None,
            dataset=ds.name if ds else None,
        )
    except LoragError as e:  # the model named in the spec, not --embedder
        if arg and str(e).startswith(f"--embedder {arg}:"):
            raise LoragError(f"grader embedding:{arg}:" + str(e).removeprefix(f"--embedder {arg}:")) from None
        raise


@hookimpl
def register_graders(register):
    register("embedding", make_embedding)
