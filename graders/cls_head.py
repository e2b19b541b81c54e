"""Classification-head grader: a decoder LM with a 2-class sequence-classification head.

The folder is either a full model (config.json: ``lorag train cls --mode full|head``) or a peft
LoRA adapter whose ``modules_to_save`` hold the trained head (adapter_config.json:
``--mode lora``), loaded on the base model named in its manifest. P(relevant) is the softmax of
class 1; the threshold comes from the manifest (calibrated on training pairs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.api.fingerprints import file_hashes, fingerprint
from lorag_harness.api.types import Pair

from .cross_encoder import (MODEL_FILES, ThresholdedGrader, check_probe, manifest_threshold, read_manifest, to_probability,
                            warn_notes)

DEFAULT_MAX_DOC_TOKENS = 96


def cls_text(query: str, document: str) -> str:
    """What the head reads: the document, then the query (the last token is pooled)."""
    return f"Document: {document}\nQuery: {query}\nRelevant:"


def encode_pairs(tokenizer, pairs, max_doc_tokens: int) -> list[list[int]]:
    """Token ids per pair, the document clipped to ``max_doc_tokens`` tokens."""
    out = []
    for p in pairs:
        ids = tokenizer(p.document, add_special_tokens=False)["input_ids"][:max_doc_tokens]
        doc = tokenizer.decode(ids)
        out.append(tokenizer(cls_text(p.query, doc), add_special_tokens=False)["input_ids"])
    return out


def pad_batch(seqs: list[list[int]], pad_id: int, side: str = "right"):
    """ids, attention mask and position ids (counted over real tokens, so either side gives the same positions)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[row, cols] = torch.tensor(s, dtype=torch.long)
        mask[row, cols] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def head_logits(model, ids, mask, positions):
    """The head on the last real token (left or right padding alike); ``model`` is the
    sequence-classification model itself (for peft: ``peft_model.get_base_model()``)."""
    import torch

    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
    return model.score(hidden[torch.arange(ids.shape[0]), last])


def cls_logits(model, seqs: list[list[int]], pad_id: int, side: str = "right", batch_size: int = 16,
               bf16: bool = False) -> np.ndarray:
    """Head logits for each sequence, in batches, without gradients."""
    import torch

    from lorag_harness.backends.lm import compute

    out = []
    with torch.no_grad(), compute("bf16" if bf16 else None):
        for i in range(0, len(seqs), batch_size):
            out.append(head_logits(model, *pad_batch(seqs[i : i + batch_size], pad_id, side)).float())
    return torch.cat(out).numpy() if out else np.zeros((0, 2))


def load_cls(folder: str, base_model: str | None = None):
    """(model, tokenizer, manifest) of a cls folder; a folder that is neither kind is an error."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(folder)
    if not path.is_dir():
        raise LoragError(f"{folder}: no such cls model folder")
    from lorag_harness.evaluation.preflight import check_model_kind

    check_model_kind(path, ("cls",), f"grader cls:{folder}")
    manifest = read_manifest(path, folder)
    is_adapter = (path / "adapter_config.json").is_file()
    if not is_adapter and not (path / "config.json").is_file():
        raise LoragError(f"{folder}: not a cls model folder (no config.json or adapter_config.json); "
                         "train one with: lorag train cls --out DIR")
    try:
        tok = AutoTokenizer.from_pretrained(path)
        if is_adapter:
            from peft import PeftModel

            from lorag_harness.backends.lm import quiet_transformers, resolve_model_path

            base = base_model or manifest.get("base_model")
            with quiet_transformers():  # the new head is replaced by the adapter's
                model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(base), num_labels=2,
                                                                           dtype=torch.float32)
            model.config.pad_token_id = tok.pad_token_id
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    except LoragError:
        raise
    except Exception as e:  # corrupt weights, a base that does not match the adapter, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"{folder}: cannot load the cls model ({first})") from None
    if model.config.num_labels != 2 or not hasattr(model, "score"):
        raise LoragError(f"{folder}: expected a decoder with a 2-class 'score' head, got {type(model).__name__} "
                         f"with {model.config.num_labels} labels")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok, manifest


class ClsHeadGrader(ThresholdedGrader):
    """P(relevant) from a decoder's 2-class head; threshold from the folder's manifest."""

    def __init__(self, folder: str, batch_size: int = 16, max_doc_tokens: int | None = None, bf16: bool | None = None,
                 base_model: str | None = None, name: str | None = None, precision: str = "auto"):
        if not folder:
            raise LoragError("the cls grader needs a folder: -g cls:runs/cls (lorag train cls --out runs/cls)")
        from lorag_harness.backends.precision import resolve

        self.name = name or f"cls:{folder}"
        # bf16 (the former argument) wins over precision; auto: bf16 where measured faster
        self.bf16 = bf16 if bf16 is not None else resolve(precision, "cpu") == "bf16"
        self.folder, self.batch_size = folder, max(1, batch_size)
        self.model, self.tokenizer, self.manifest = load_cls(folder, base_model)
        self.max_doc_tokens = max_doc_tokens or self.manifest.get("hyper", {}).get("max_doc_tokens", DEFAULT_MAX_DOC_TOKENS)
        self.threshold, self.notes = manifest_threshold(self.manifest, folder)
        check_probe(self.manifest, lambda pairs: self.probabilities(pairs, bf16=False), folder)
        self.files = file_hashes(folder, MODEL_FILES)
        self.base_files = self.manifest.get("base_model") if (Path(folder) / "adapter_config.json").is_file() else None
        warn_notes(self.name, self.notes)

    def fingerprint(self) -> str:
        return fingerprint(kind="cls", files=self.files, base=self.base_files, threshold=round(self.threshold, 6),
                           max_doc_tokens=self.max_doc_tokens, bf16=self.bf16, text=cls_text("{q}", "{d}"))

    def probabilities(self, pairs: list[Pair], side: str = "right", bf16: bool | None = None) -> np.ndarray:
        seqs = encode_pairs(self.tokenizer, pairs, self.max_doc_tokens)
        logits = cls_logits(self.model, seqs, self.tokenizer.pad_token_id, side, self.batch_size,
                            self.bf16 if bf16 is None else bf16)
        return to_probability(logits) if len(seqs) else np.zeros(0)



def make_cls(arg, context):
    """A decoder LM with a 2-class head (lorag train cls); threshold from its manifest."""
    from lorag_harness.backends.precision import grading_precision

    used = grading_precision(context.quant if context else None, getattr(context, "precision", "auto"), "cpu")
    return ClsHeadGrader(arg or "", bf16=used == "bf16", base_model=None)
