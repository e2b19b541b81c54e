"""lorag merge ADAPTER --gguf: the GGUF loads back with transformers (gguf_file=) and gives the merged
HF model's P(true) within 1e-3 on 32 pairs; an Ollama Modelfile and the answer's schema beside it."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_llama

from lorag_harness.backends import lm
from lorag_harness.backends import prompts
from lorag_harness.cli.app import cli
from lorag_harness.graders.lm_scoring import score_true_false

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def sharp_adapter(tmp_path_factory, tokenizer):
    """A tiny Llama whose attention is far from uniform (so a wrong q/k layout would show) and a
    LoRA adapter with random, non-zero B on every projection."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("gguf")
    base = make_tiny_llama(tokenizer, seed=3)
    with torch.no_grad():
        for layer in base.model.layers:
            layer.self_attn.q_proj.weight.mul_(6)
            layer.self_attn.k_proj.weight.mul_(6)
        base.lm_head.weight.mul_(2)
    base.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    torch.manual_seed(5)
    cfg = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    (root / "adapter" / "manifest.json").write_text(json.dumps({"base_model": str(root / "base"),
                                                                "calibration": {"threshold": 0.42}}))
    return root


def _p_true(model, tok, pairs):
    seqs = [prompts.encode(tok, q, d, prompts.PREFILL, 40) for q, d in pairs]
    ids = [prompts.single_token(tok, t) for t in (" true", " false")]
    with torch.no_grad():
        return np.array(score_true_false(model.eval(), seqs, *ids, tok.pad_token_id, 8)), seqs


PAIRS = [(f"query {i}: {topic}", f"Document {i}. " + text * (1 + i % 3))
         for i, (topic, text) in enumerate([("crude oil prices", "OPEC cut output and crude rose. "),
                                            ("grain exports", "Wheat shipments fell in the quarter. "),
                                            ("bank mergers", "Two banks agreed to merge, shares up. "),
                                            ("coffee", "Coffee futures slid on rain in Brazil. ")] * 8)]


@pytest.mark.integration  # writes and reloads two GGUF files
@pytest.mark.parametrize("quant, tol", [("f16", 1e-3), ("q8_0", 1e-2)])
def test_gguf_matches_the_merged_model(sharp_adapter, tmp_path, quant, tol):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "gguf" / f"grader-{quant}.gguf"
    done = CliRunner().invoke(cli, ["merge", str(sharp_adapter / "adapter"), "--out", str(tmp_path / "merged"),
                                    "--gguf", str(out), "--quant", quant])
    assert done.exit_code == 0, done.output
    merged_tok = lm.load_tokenizer(str(tmp_path / "merged"))
    want, seqs = _p_true(lm.load_model(str(tmp_path / "merged")), merged_tok, PAIRS)
    assert want.std() > 0.02  # the scores differ between pairs: the comparison can fail
    model = AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(out.parent, gguf_file=out.name)
    got, gseqs = _p_true(model, tok, PAIRS)
    assert gseqs == seqs  # the GGUF's tokenizer and chat template give the same tokens
    assert np.abs(got - want).max() < tol, np.abs(got - want).max()
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"  # the packaged SmolLM2 GGUF's
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == quant.upper() and kinds["blk.0.attn_norm.weight"] == "F32"
    modelfile = (out.parent / "Modelfile").read_text()
    assert f"FROM ./{out.name}" in modelfile and prompts.SYSTEM in modelfile and "0.42" in modelfile
    schema = json.loads((out.parent / f"grader-{quant}.schema.json").read_text())
    assert schema["properties"]["relevant"]["type"] == "boolean"


@pytest.mark.integration
def test_wrong_layout_would_be_caught(sharp_adapter, tmp_path):
    """The same export without llama.cpp's q/k permutation scores differently: the test above can fail."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import lorag_harness.backends.gguf_export as ge

    merged = lm.load_model(str(sharp_adapter / "base"), adapter=str(sharp_adapter / "adapter")).merge_and_unload()
    tok = lm.load_tokenizer(str(sharp_adapter / "adapter"))
    want, _ = _p_true(merged, tok, PAIRS)
    original = ge._permute
    try:
        ge._permute = lambda w, n_head, n_head_kv=None: w
        ge.export_adapter(str(sharp_adapter / "adapter"), tmp_path / "bad.gguf", "f16", model=merged)
    finally:
        ge._permute = original
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="bad.gguf", dtype=torch.float32)
    got, _ = _p_true(model, AutoTokenizer.from_pretrained(tmp_path, gguf_file="bad.gguf"), PAIRS)
    assert np.abs(got - want).max() > 1e-2


def test_merge_options_are_checked(sharp_adapter, tmp_path):
    r = CliRunner().invoke(cli, ["merge", str(sharp_adapter / "adapter")])
    assert r.exit_code == 2 and "pass --out DIR" in r.output
    r = CliRunner().invoke(cli, ["merge", str(sharp_adapter / "adapter"), "--gguf", str(tmp_path / "x.bin")])
    assert r.exit_code == 2 and "name the file .gguf" in r.output
