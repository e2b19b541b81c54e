"""Embedding-similarity grader: cosine of query and document, threshold calibrated on train pairs.

Texts are embedded through ``lorag_harness.backends.embedder.embed``, which encodes each distinct text once per
process (shared with the dense first stage); the logistic fit is stored under the cache folder per
(embedder, training pairs), so a second run does not encode the training pairs again."""
from __future__ import annotations

import json

import numpy as np

from lorag_harness.evaluation import calibration
from lorag_harness.data.validation import require_both_labels
from lorag_harness.data.pairs import lead
from lorag_harness.backends.embedder import DEFAULT_EMBEDDER, embed, embedder_fingerprint
from lorag_harness.api import Grader
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment, Pair, pairs_hash

from lorag_harness.api.fingerprints import fingerprint, model_files


class EmbeddingGrader(Grader):
    """P(relevant) by logistic calibration of the cosine on the training pairs;
    topics are the nearest topic names, the summary the document's lead."""

    C = 100.0  # the logistic fit's inverse regularisation
    grading_chunk = 256  # pairs per grade() call from the runner: the encoder batches them (sorted by length)

    def __init__(self, name: str = "embedding", model: str | None = None, train_pairs=(), topics=None,
                 calibrate: bool = True, dataset: str | None = None, pairs_name: str | None = None):
        """``train_pairs`` need both labels; ``calibrate=False`` (asked for explicitly) skips the fit:
        P(relevant) = sigmoid(cosine), relevant above cosine 0. Training pairs on which the cosine ranks
        negatives above positives raise :class:`~lorag_harness.evaluation.calibration.InvertedPairs` (``pairs_name``
        names them in the message, default ``dataset``)."""
        self.name, self.model_name = name, model
        self.topics = dict(topics or {})
        self.calibration: dict | None = None  # the fit and its direction check; "cached": reused from an earlier run
        if calibrate:
            require_both_labels(train_pairs, dataset, "the embedding grader (it calibrates its threshold)",
                                "give it training pairs of both labels (jsonl: a train.jsonl beside eval.jsonl, on documents "
                                "not in eval.jsonl, or "
                                "one pairs file that lorag splits), or in Python EmbeddingGrader(calibrate=False) "
                                "for the raw cosine")
            self.calibration = self._calibrate(list(train_pairs))
            calibration.check_direction(
                self.calibration, pairs_name or dataset or "the given pairs",
                "the embedding grader's cosine" if name == "embedding" else f"{name}'s cosine",
                "Their negatives are probably relevant documents nobody judged: use judged negatives (qrels grade 0) "
                "or negatives from deeper first-stage ranks, or check that the labels are not swapped.")
            self.coef, self.intercept = self.calibration["coef"], self.calibration["intercept"]
        else:
            self.coef, self.intercept = 1.0, 0.0

    def _cosines(self, pairs: list[Pair]) -> np.ndarray:
        q = embed([p.query for p in pairs], self.model_name)
        d = embed([p.document for p in pairs], self.model_name)
        return np.sum(q * d, axis=1)

    def calibration_key(self, pairs: list[Pair]) -> str:
        """The stored fit's key: the embedder's fingerprint, the fit's settings, the pairs' texts and labels."""
        return fingerprint(kind="embedding-calibration", embedder=embedder_fingerprint(self.model_name), C=self.C,
                           version=1, pairs=pairs_hash(pairs), n=len(pairs))

    def _calibrate(self, pairs: list[Pair]) -> dict:
        """Logistic fit of the label on the cosine, with the cosine's AUC on the pairs; reused when stored."""
        key = self.calibration_key(pairs)
        stored = calibration.load(key)
        fields = ("coef", "intercept", "slope", "auc", "auc_low", "auc_high")
        if stored is not None and all(isinstance(stored.get(k), (int, float)) for k in fields):
            return stored | {"cached": True}
        from sklearn.linear_model import LogisticRegression

        x = self._cosines(pairs).reshape(-1, 1)
        y = np.array([p.label for p in pairs], dtype=int)
        clf = LogisticRegression(C=self.C).fit(x, y)
        fit = {"coef": float(clf.coef_[0, 0]), "intercept": float(clf.intercept_[0]), "slope": float(clf.coef_[0, 0]),
               **calibration.direction(y, x[:, 0])}
        calibration.save(key, fit)
        return fit | {"cached": False}

    @property
    def threshold(self) -> float:
        """The cosine at which P(relevant) = 0.5."""
        return -self.intercept / self.coef

    def fingerprint(self) -> str:
        return fingerprint(kind="embedding", model=self.model_name or DEFAULT_EMBEDDER,
                           **model_files(self.model_name, DEFAULT_EMBEDDER),
                           coef=round(self.coef, 6), intercept=round(self.intercept, 6), topics=self.topics)

    @staticmethod
    def grading_order(pair: Pair) -> int:
        """The runner grades uncached pairs in this order: documents of similar length share a chunk, so
        the encoder pads little (one ``grade`` call over all pairs gets the same from sentence-transformers)."""
        return len(pair.document)

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
    from lorag_harness.evaluation.preflight import check_embedder

    check_embedder(arg or context.embedder, f"grader embedding:{arg}" if arg else "--embedder")
    ds = context.dataset
    try:
        return EmbeddingGrader(
            "embedding" if not arg else f"embedding:{arg}",
            model=arg or context.embedder,
            train_pairs=ds.train_pairs if ds else (),
            topics=ds.topics if ds else None,
            dataset=ds.name if ds else None,
            pairs_name=calibration.describe_pairs(ds) if ds else None,
        )
    except LoragError as e:  # the model named in the spec, not --embedder
        if arg and str(e).startswith(f"--embedder {arg}:"):
            raise LoragError(f"grader embedding:{arg}:" + str(e).removeprefix(f"--embedder {arg}:")) from None
        raise


def _check_embedding(arg, context):
    """The model folder or id, no weights loaded (run before any grader is built)."""
    from lorag_harness.evaluation.preflight import check_embedder

    check_embedder(arg or context.embedder, f"grader embedding:{arg}" if arg else "--embedder")


make_embedding.check = _check_embedding
