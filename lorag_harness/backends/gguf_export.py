"""A merged S1/S2 grader as a GGUF file for llama.cpp and Ollama, written with the ``gguf`` package.

Llama-architecture models only (SmolLM2 and the like). Tensor names and the q/k row permutation
follow llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``); the tokenizer fields follow its
GPT-2 BPE vocabulary export (tokens, token types, merges and special ids via ``gguf.SpecialVocab``),
with the pre-tokenizer name taken from the packaged SmolLM2 GGUF when the vocabulary is the same.
Next to the file, an Ollama ``Modelfile`` carries the grader's prompt and chat template, and
``<name>.schema.json`` the JSON answer format."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lorag_harness.errors import LoragError

QUANTS = ("f16", "q8_0")
# with f16, the token embedding (tied to the output head, whose " true"/" false" rows set P(true))
# stays float32: rounding those two rows shifts every pair's P(true) alike
KEEP_F32 = ("token_embd.weight", "output.weight")


def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: rotary halves interleaved the GGML way (q with n_head, k with n_head_kv)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _names(n_blocks: int) -> dict[str, str]:
    """HF Llama tensor name -> GGUF name."""
    out = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    per = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
           "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(n_blocks):
        out |= {f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in per.items()}
    return out


def _vocab(tokenizer, vocab_size: int):
    """(tokens, token types) as convert_hf_to_gguf's ``get_vocab_base``."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tok = reverse[i]
        if tok in added:
            types.append(gguf.TokenType.CONTROL if i in decoder and decoder[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(tok)
    return tokens, types


def _reference_pre(tokens: list[str]) -> str:
    """The packaged SmolLM2 GGUF's pre-tokenizer name when its vocabulary is ``tokens``, else ``default``."""
    try:
        import gguf

        from lorag_harness.backends.lm import GGUF_FILE, packaged_gguf

        reader = gguf.GGUFReader(str(packaged_gguf() / GGUF_FILE))
        theirs = reader.fields["tokenizer.ggml.tokens"].contents()
        if list(theirs) == list(tokens):
            return str(reader.fields["tokenizer.ggml.pre"].contents())
    except Exception:  # noqa: BLE001 - no reference: the generic name
        pass
    return "default"


def write_gguf(model, tokenizer, tokenizer_dir: str | Path, out: str | Path, quant: str = "f16",
               name: str = "lorag-grader") -> dict:
    """Write ``model`` (a merged LlamaForCausalLM) and its tokenizer to ``out``; returns what was written."""
    import gguf
    import torch

    if quant not in QUANTS:
        raise LoragError(f"--quant {quant}: f16 or q8_0")
    cfg = model.config
    if cfg.model_type != "llama":
        raise LoragError(f"--gguf: only Llama-architecture models are exported (this one is {cfg.model_type!r})")
    out = Path(out)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    names = _names(cfg.num_hidden_layers)
    state = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    unknown = [k for k in state if k not in names and not k.endswith("rotary_emb.inv_freq")]
    if unknown:
        raise LoragError(f"--gguf: tensors with no GGUF name: {', '.join(unknown[:3])}")
    rope = getattr(cfg, "rope_scaling", None) or {}
    if rope and rope.get("rope_type", rope.get("type")) not in (None, "default"):
        raise LoragError(f"--gguf: rope scaling {rope} is not exported")
    theta = getattr(cfg, "rope_theta", None) or (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)

    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types = _vocab(tokenizer, cfg.vocab_size)
    pre = _reference_pre(tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(Path(tokenizer_dir), load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise LoragError(f"--gguf: the tokenizer in {tokenizer_dir} is not a BPE tokenizer with merges (GPT-2 style)")
    if not special.chat_template and getattr(tokenizer, "chat_template", None):
        special.chat_template = tokenizer.chat_template  # saved as chat_template.jinja, which SpecialVocab does not read
    special.add_to_gguf(writer, quiet=True)
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)

    for hf, arr in state.items():
        if hf.endswith("rotary_emb.inv_freq") or (hf == "lm_head.weight" and tied):
            continue
        if hf.endswith("q_proj.weight"):
            arr = _permute(arr, n_head, n_head)
        elif hf.endswith("k_proj.weight"):
            arr = _permute(arr, n_head, n_kv)
        if arr.ndim == 1 or (quant == "f16" and names[hf] in KEEP_F32):  # norms stay float32, as llama.cpp keeps them
            writer.add_tensor(names[hf], arr.astype(np.float32))
        elif quant == "q8_0" and arr.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
            data = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(names[hf], data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(names[hf], arr.astype(np.float16))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, out)
    return {"gguf": str(out), "quant": quant, "tokenizer_pre": pre, "tensors": len(state) - (1 if tied and "lm_head.weight" in state else 0)}


def answer_schema() -> dict:
    """The JSON answer a grader gives (what Ollama's ``format`` and OpenAI's ``response_format`` take)."""
    reason = {"type": "object", "properties": {k: {"type": "string"} for k in ("query_topic", "document_topic", "summary")},
              "required": ["query_topic", "document_topic", "summary"]}
    return {"type": "object", "properties": {"relevant": {"type": "boolean"}, "reason": reason}, "required": ["relevant"]}


def write_modelfile(gguf_path: str | Path, threshold: float | None = None) -> tuple[Path, Path]:
    """An Ollama Modelfile beside the GGUF (the grader's system prompt, the ChatML template SmolLM2 was
    tuned with, greedy decoding) and ``<stem>.schema.json`` with the answer's JSON schema."""
    from lorag_harness.backends import prompts

    gguf_path = Path(gguf_path)
    schema = gguf_path.with_name(gguf_path.stem + ".schema.json")
    schema.write_text(json.dumps(answer_schema(), indent=2) + "\n", encoding="utf-8")
    template = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
                "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
                "<|im_start|>assistant\n")
    lines = [
        "# lorag-harness grader for Ollama: ollama create GRADER -f Modelfile",
        f"# user message: 'Document: <text>\\nQuery: <query>'; answer JSON as in {schema.name} "
        "(pass it as the request's format)",
    ]
    if threshold is not None:
        lines.append(f"# relevant when P(\" true\") after '{prompts.PREFILL}' reaches {threshold:.4g} (the adapter's threshold)")
    lines += [f"FROM ./{gguf_path.name}", f'TEMPLATE """{template}"""', f'SYSTEM """{prompts.SYSTEM}"""',
              "PARAMETER temperature 0", 'PARAMETER stop "<|im_end|>"', ""]
    modelfile = gguf_path.with_name("Modelfile")
    modelfile.write_text("\n".join(lines), encoding="utf-8")
    return modelfile, schema


def export_adapter(adapter: str, gguf_out: str | Path, quant: str = "f16", base_model: str | None = None,
                   model=None) -> dict:
    """Merge ``adapter`` into its base model (or take the already merged ``model``) and write the
    GGUF, the Modelfile and the answer schema next to ``gguf_out``."""
    import tempfile

    from lorag_harness.backends import lm

    if base_model is None:
        base = lm.adapter_manifest(adapter).get("base_model")
        base_model = None if base == lm.DEFAULT_MODEL else base
    if model is None:
        model = lm.load_model(base_model, adapter=adapter).merge_and_unload()
    tokenizer = lm.load_tokenizer(adapter)
    gguf_out = Path(gguf_out)
    gguf_out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tok_dir:  # SpecialVocab reads the tokenizer files
        tokenizer.save_pretrained(tok_dir)
        info = write_gguf(model.eval(), tokenizer, tok_dir, gguf_out, quant, name=Path(adapter).name or "lorag-grader")
    threshold = lm.adapter_manifest(adapter).get("calibration", {}).get("threshold")
    modelfile, schema = write_modelfile(gguf_out, threshold)
    return info | {"modelfile": str(modelfile), "schema": str(schema)}
