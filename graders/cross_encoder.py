"""Cross-encoder reranker grader: sentence-transformers ``CrossEncoder`` over (query, document).

The score is P(relevant): the sigmoid of a one-logit head, the softmax of a two-logit head.
The relevance threshold comes from the model folder's manifest.json when it was trained here
(calibrated on training pairs); otherwise it is 0.5 and the grader says so in ``notes``."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from lorag_harness.api.grader import Grader
from lorag_harness.errors import LoragError
from lorag_harness.api.fingerprints import file_hashes, fingerprint
from lorag_harness.api.types import Judgment, Pair

MODEL_FILES = ("*.safetensors", "*.bin", "*.json", "*.txt", "*.model")


def read_manifest(folder: Path, spec: str) -> dict:
    """The trainer's manifest.json beside a model ({} when there is none); a broken one is an error."""
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoragError(f"{path}: unreadable manifest ({e}); retrain the model or remove the file") from None
    if not isinstance(manifest, dict):
        raise LoragError(f"{path}: a manifest must be a JSON object")
    return manifest


def manifest_threshold(manifest: dict, where: str) -> tuple[float, list[str]]:
    """The calibrated threshold of a manifest, or 0.5 with a note saying it is not calibrated; a model whose
    calibration ranks its calibration pairs upside down is refused (``calibration.check_manifest``)."""
    from lorag_harness.evaluation.calibration import check_manifest

    check_manifest(manifest, where)
    cut = (manifest.get("calibration") or {}).get("threshold")
    if cut is None:
        return 0.5, [f"{where}: no calibrated threshold (no manifest.json from lorag train); deciding at P >= 0.5"]
    if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not 0.0 <= cut <= 1.0:
        raise LoragError(f"{where}/manifest.json: calibration.threshold must be a number in [0, 1], not {cut!r}")
    return float(cut), []


def warn_notes(name: str, notes: list[str]) -> None:
    """Print a grader's notes at build time (they also stay on ``grader.notes`` for reports)."""
    if notes:
        from rich.console import Console

        for note in notes:
            Console(stderr=True).print(f"[yellow]warning[/] {name}: {note}", soft_wrap=True)


def check_probe(manifest: dict, probabilities, where: str, tolerance: float = 1e-3) -> None:
    """The trainer records P(relevant) for a few training pairs in the manifest; a loaded model
    must reproduce them (a changed base model or a damaged file would not)."""
    probe = manifest.get("probe") or []
    if not probe:
        return
    try:
        pairs = [Pair(r["query"], r["document"], bool(r["label"])) for r in probe]
        want = np.asarray([float(r["p"]) for r in probe])
    except (KeyError, TypeError, ValueError):
        raise LoragError(f"{where}/manifest.json: malformed 'probe' entries") from None
    got = np.asarray(probabilities(pairs))
    worst = float(np.max(np.abs(got - want)))
    if worst > tolerance:
        raise LoragError(f"{where}: the loaded model does not reproduce the scores recorded when it was trained "
                         f"(max difference {worst:.2g}): a different base model or damaged files")


def probe_records(pairs: list[Pair], probs) -> list[dict]:
    return [{"query": p.query, "document": p.document, "label": p.label, "p": float(q)} for p, q in zip(pairs, probs)]


def to_probability(logits: np.ndarray) -> np.ndarray:
    """P(relevant) from one logit (sigmoid) or two (softmax, class 1)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True))[:, 1]


def local_model_folder(spec: str) -> Path | None:
    """The folder a model spec names, None for a hub id; a path that is no model folder is an error."""
    path = Path(spec).expanduser()
    looks_local = path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec
    if not looks_local:
        return None
    if not path.is_dir():
        raise LoragError(f"{spec}: no such model folder")
    if not (path / "config.json").is_file():
        raise LoragError(f"{spec}: not a model folder (no config.json)")
    return path


class ThresholdedGrader(Grader):
    """A grader whose ``probabilities(pairs)`` give P(relevant); relevant at ``threshold``
    (a trained model's calibrated one). Subclasses set ``batch_size`` and ``threshold``."""

    batch_size: int = 32
    threshold: float = 0.5

    def probabilities(self, pairs: list[Pair]) -> np.ndarray:
        raise NotImplementedError

    def grade(self, pairs: list[Pair], *, reasons: bool = False, advance=None) -> list[Judgment]:
        out = []
        for i in range(0, len(pairs), self.batch_size):
            chunk = pairs[i : i + self.batch_size]
            for p in self.probabilities(chunk):
                out.append(Judgment(relevant=bool(p >= self.threshold), score=float(p),
                                    raw_text=f"p={p:.4f} threshold={self.threshold:.4f}"))
            if advance:
                advance(len(chunk))
        return out


class CrossEncoderGrader(ThresholdedGrader):
    """Relevance from a cross-encoder; threshold from the model's manifest (else 0.5, noted)."""

    def __init__(self, model: str, batch_size: int = 32, max_length: int | None = None, name: str | None = None,
                 bf16: bool | None = None, precision: str = "auto"):
        if not model:
            raise LoragError("the cross-encoder grader needs a model: -g cross-encoder:runs/reranker or cross-encoder:HF_ID")
        if batch_size < 1:
            raise LoragError(f"cross-encoder: batch size must be >= 1, not {batch_size}")
        from lorag_harness.backends.precision import resolve

        self.name = name or f"cross-encoder:{model}"
        # bf16 (the former argument) wins over precision; auto: bf16 where measured faster
        self.bf16 = bf16 if bf16 is not None else resolve(precision, "cpu") == "bf16"
        self.spec, self.batch_size = model, batch_size
        folder = local_model_folder(model)
        if folder is not None:
            from lorag_harness.evaluation.preflight import check_model_kind

            check_model_kind(folder, ("cross-encoder",), f"grader cross-encoder:{model}")
        self.model = self.load(model, max_length)
        self.max_length = self.model.max_seq_length
        if folder is None:  # a hub id: hash the files of the snapshot it resolved to
            folder = _snapshot_folder(self.model)
        self.folder = folder
        self.manifest = read_manifest(folder, model) if folder else {}
        self.threshold, self.notes = manifest_threshold(self.manifest, model)
        check_probe(self.manifest, lambda pairs: self.probabilities(pairs, bf16=False), model)
        self.files = file_hashes(str(folder), MODEL_FILES) if folder else {}
        if not self.files:
            self.notes.append(f"{model}: model files not found on disk; cached judgments are keyed by its name only")
        warn_notes(self.name, self.notes)

    @staticmethod
    def load(model: str, max_length: int | None = None):
        """The CrossEncoder behind ``model`` (HF id or folder), float32, in eval mode."""
        import torch
        from sentence_transformers.cross_encoder import CrossEncoder

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ce = CrossEncoder(model, device="cpu", max_length=max_length, activation_fn=torch.nn.Identity())
        except LoragError:
            raise
        except Exception as e:  # unreachable hub, corrupt weights, not a sequence-classification model
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LoragError(f"cross-encoder {model}: cannot load a CrossEncoder ({first})") from None
        labels = ce.num_labels
        if labels not in (1, 2):
            raise LoragError(f"cross-encoder {model}: a relevance model has 1 or 2 output labels, this one has {labels}")
        ce.eval()
        return ce

    def fingerprint(self) -> str:
        return fingerprint(kind="cross-encoder", model=self.spec if not self.files else None, files=self.files,
                           threshold=round(self.threshold, 6), max_length=self.max_length, bf16=self.bf16)

    def probabilities(self, pairs: list[Pair], bf16: bool | None = None) -> np.ndarray:
        return self.predict(self.model, pairs, self.batch_size, self.bf16 if bf16 is None else bf16)

    @staticmethod
    def predict(ce, pairs: list[Pair], batch_size: int = 32, bf16: bool = False) -> np.ndarray:
        """P(relevant) of each pair from a loaded CrossEncoder."""
        from lorag_harness.backends.lm import compute

        if not pairs:
            return np.zeros(0)
        with compute("bf16" if bf16 else None):
            logits = ce.predict([(p.query, p.document) for p in pairs], batch_size=batch_size,
                                show_progress_bar=False, convert_to_numpy=True)
        return to_probability(logits)


def _snapshot_folder(ce) -> Path | None:
    """The local folder a hub model was loaded from (its cached snapshot), if known."""
    name = getattr(ce.model.config, "_name_or_path", "") or ""
    path = Path(name)
    return path if name and path.is_dir() else None


def make_cross_encoder(arg, context):
    """A sentence-transformers cross-encoder (HF id or folder); threshold from its manifest."""
    from lorag_harness.backends.precision import grading_precision

    used = grading_precision(context.quant if context else None, getattr(context, "precision", "auto"), "cpu")
    return CrossEncoderGrader(arg or "", batch_size=max(context.batch_size, 32) if context else 32, bf16=used == "bf16")
