import json
import random

import pytest
import torch

from lorag_harness import lm
from lorag_harness.errors import LoragError
from lorag_harness.model import Pair
from lorag_harness.trainers.batching import balance, collate, length_batches
from lorag_harness.trainers.examples import Example, build_examples, encode
from lorag_harness.trainers.loss import full_logits_loss, masked_loss
from lorag_harness.trainers.train import TrainConfig, is_current, merge, prepare_model, train

REASON = {"query_topic": "crude oil", "document_topic": "crude oil", "summary": "A crude oil story: opec cuts output."}
PAIR = Pair("news about crude oil", "opec cuts output as crude prices fall", True, "crude oil", "crude oil", "p1")


def loss_ids(tokenizer, stage, loss="masked", pair=PAIR):
    ex = encode(tokenizer, pair, REASON, stage, loss)
    return [ex.input_ids[i] for i in ex.loss_positions], ex


def test_stage1_loss_is_on_the_relevant_value_only(tokenizer):
    ids, ex = loss_ids(tokenizer, "s1")
    assert ids == [2629]  # " true" in the SmolLM2 vocabulary
    neg = Pair(PAIR.query, PAIR.document, False, "crude oil", "crude oil", "p2")
    assert loss_ids(tokenizer, "s1", pair=neg)[0] == [7065]  # " false"
    # the token before it is the end of the prefill the graders use
    prefill = tokenizer(lm_prefill(), add_special_tokens=False)["input_ids"]
    assert ex.input_ids[ex.loss_positions[0] - len(prefill) : ex.loss_positions[0]] == prefill
    # nothing after the value is run: later tokens cannot change a causal loss
    assert ex.loss_positions[-1] == len(ex.input_ids) - 1


def lm_prefill():
    from lorag_harness.prompts import PREFILL

    return PREFILL


def test_stage2_loss_is_on_the_reason_through_eos(tokenizer):
    ids, ex = loss_ids(tokenizer, "s2")
    assert ids[0] == 9583 and ids[-2:] == [17859, 2]  # ' {"' ... '}}' '<|im_end|>'
    expected = ' {"query_topic": "crude oil", "document_topic": "crude oil", "summary": "A crude oil story: opec cuts output."}}<|im_end|>'
    assert tokenizer.decode(ids) == expected
    # contiguous, and nothing of the prompt or of the relevant value
    assert ex.loss_positions == list(range(ex.loss_positions[0], len(ex.input_ids)))
    assert 2629 not in ids


def test_ablation_masks(tokenizer):
    full_ids, full = loss_ids(tokenizer, "s1", "full")
    assert tokenizer.decode(full_ids) == json.dumps({"relevant": True, "reason": REASON}) + "<|im_end|>"
    weighted = encode(tokenizer, PAIR, REASON, "s1", "weighted", weight=5.0)
    heavy = [weighted.input_ids[i] for i, w in enumerate(weighted.weights) if w == 5.0]
    assert heavy == [2629] and weighted.loss_positions == full.loss_positions
    with pytest.raises(LoragError):
        encode(tokenizer, PAIR, REASON, "s3")


def test_masked_loss_equals_full_logits_loss(tokenizer):
    from conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer)
    pairs = [PAIR, Pair("grain", "wheat exports rose sharply this year", False, "grain", "shipping", "p3")]
    for stage in ("s1", "s2"):
        batch = collate(build_examples(tokenizer, pairs, None, stage), tokenizer.pad_token_id)
        assert masked_loss(model, batch).item() == pytest.approx(full_logits_loss(model, batch).item(), rel=1e-5)


def test_batching_and_balance():
    rng = random.Random(0)
    exs = [Example([1] * n, [0.0] * (n - 1) + [1.0], n % 3 == 0) for n in range(2, 32)]
    batches = length_batches(exs, 4, rng)
    assert sorted(len(e.input_ids) for b in batches for e in b) == sorted(len(e.input_ids) for e in exs)
    assert all(max(len(e.input_ids) for e in b) - min(len(e.input_ids) for e in b) <= 3 for b in batches)
    b = collate(batches[0], pad_id=0)
    assert b["weights"].sum().item() == len(batches[0])  # padding carries no loss
    pos = sum(e.label for e in exs)
    assert sum(e.label for e in balance(exs, "over", rng)) * 2 == len(balance(exs, "over", rng))
    assert len(balance(exs, "under", rng)) == 2 * pos


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_model_dir, r8_small):
    out = tmp_path_factory.mktemp("adapters")
    common = dict(base_model=tiny_model_dir, batch_size=4, max_doc_tokens=24, lr=5e-3, r=8, alpha=16, quant="none")
    s1 = TrainConfig(stage="s1", out=str(out / "s1"), steps=25, **common)
    m1 = train(s1, r8_small)
    s2 = TrainConfig(stage="s2", out=str(out / "s2"), init_adapter=str(out / "s1"), steps=15, **common)
    m2 = train(s2, r8_small)
    return s1, m1, s2, m2


def test_two_stage_training_learns_and_writes_manifests(adapters, r8_small, tiny_model_dir):
    s1, m1, s2, m2 = adapters
    for cfg, m in ((s1, m1), (s2, m2)):
        assert m["metrics"]["final_loss"] < m["metrics"]["first_loss"]
        saved = json.loads(open(f"{cfg.out}/manifest.json").read())
        assert saved["key"] == m["key"] and saved["data_hash"] == m["data_hash"]
        assert saved["hyperparameters"]["r"] == 8 and saved["hyperparameters"]["quant"] == "none"
        assert is_current(cfg, r8_small.train_pairs)
    assert m1["masks"]["mean_loss_tokens"] == 1.0 and m2["masks"]["mean_loss_tokens"] > 10
    assert m2["init_adapter"] == s1.out
    # a changed hyper-parameter makes the adapter stale
    assert not is_current(TrainConfig(**{**s1.__dict__, "lr": 1e-3}), r8_small.train_pairs)


def test_youden_threshold_separates_the_classes():
    from lorag_harness.trainers.calibrate import youden_threshold

    # every score is high: 0.5 calls all pairs relevant, the fitted cut splits them
    scores = [0.70, 0.72, 0.75, 0.79, 0.81, 0.84, 0.88, 0.91, 0.93, 0.95]
    labels = [False, False, True, False, False, True, True, False, True, True]
    cut = youden_threshold(labels, scores)
    assert cut == 0.84  # TPR 4/5 - FPR 1/5, the only cut reaching 0.6
    assert sum((s >= cut) == y for s, y in zip(scores, labels)) == 8
    assert sum((s >= 0.5) == y for s, y in zip(scores, labels)) == 5


def test_adapters_carry_a_calibrated_threshold_the_grader_uses(adapters, r8_small, tiny_model_dir):
    from lorag_harness.graders.lm_graders import LMGrader

    for cfg, m in ((adapters[0], adapters[1]), (adapters[2], adapters[3])):
        c = m["calibration"]
        assert c["pairs"] == min(256, len(r8_small.train_pairs)) and 0.0 <= c["threshold"] <= 1.0
        g = LMGrader("s", base_model=tiny_model_dir, adapter=cfg.out, max_doc_tokens=24)
        assert g.threshold == c["threshold"]
        pairs = r8_small.eval_pairs[:12]
        assert [j.relevant for j in g.grade(pairs)] == [j.score >= c["threshold"] for j in g.grade(pairs)]
    assert LMGrader("s", base_model=tiny_model_dir, adapter=adapters[0].out, threshold=0.3).threshold == 0.3
    assert LMGrader("base", base_model=tiny_model_dir).threshold == 0.5


def test_grader_folds_the_adapter_into_the_weights(adapters, r8_small, tiny_model_dir):
    from lorag_harness.graders.lm_graders import LMGrader
    from lorag_harness.graders.lm_scoring import score_true_false
    from lorag_harness import prompts

    g = LMGrader("s2", base_model=tiny_model_dir, adapter=adapters[2].out, max_doc_tokens=24)
    assert not any("lora_" in name for name, _ in g.model.named_parameters())
    pairs = r8_small.eval_pairs[:10]
    seqs = [g.encode(p, prompts.PREFILL) for p in pairs]
    ids = (g.token_id(" true"), g.token_id(" false"), g.tokenizer.pad_token_id)
    unmerged = score_true_false(lm.load_model(tiny_model_dir, adapters[2].out), seqs, *ids)
    assert torch.allclose(torch.tensor([j.score for j in g.grade(pairs)]), torch.tensor(unmerged), atol=1e-4)


def test_only_lora_weights_change(adapters, tiny_model_dir):
    from peft import PeftModel

    s1 = adapters[0]
    base = lm.load_model(tiny_model_dir)
    tuned = PeftModel.from_pretrained(lm.load_model(tiny_model_dir), s1.out)
    base_sd = base.state_dict()
    for name, value in tuned.get_base_model().state_dict().items():
        if "lora_" not in name:
            assert torch.equal(value, base_sd[name.replace(".base_layer", "")]), name
    lora_b = [v for k, v in tuned.state_dict().items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: training moved it


def test_merge_matches_adapter(adapters, tiny_model_dir, tmp_path):
    from peft import PeftModel

    s2 = adapters[2]
    merged_dir = merge(s2.out, str(tmp_path / "merged"), base_model=tiny_model_dir)
    assert (merged_dir / "tokenizer_config.json").is_file()
    x = torch.randint(10, 1000, (1, 12))
    with torch.no_grad():
        want = PeftModel.from_pretrained(lm.load_model(tiny_model_dir), s2.out).eval()(input_ids=x).logits
        got = lm.load_model(str(merged_dir))(input_ids=x).logits
    assert torch.allclose(want, got, atol=1e-4)


def test_nf4_qlora_path(tiny_model_dir, r8_small, tmp_path):
    cfg = TrainConfig(stage="s1", out=str(tmp_path / "q"), base_model=tiny_model_dir, quant="nf4", steps=2,
                      batch_size=2, max_doc_tokens=16, r=4, alpha=8)
    model = prepare_model(cfg)
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert model.get_base_model().is_gradient_checkpointing
    m = train(cfg, r8_small)
    assert m["hyperparameters"]["quant"] == "nf4" and all(x == x for x in m["metrics"]["losses"])
    assert (tmp_path / "q" / "adapter_model.safetensors").is_file()


def test_stage2_needs_stage1(r8_small, tmp_path):
    with pytest.raises(LoragError, match="starts from the S1 adapter"):
        train(TrainConfig(stage="s2", out=str(tmp_path / "x")), r8_small)


def test_adapter_on_another_base_is_refused(adapters):
    from lorag_harness.graders.lm_graders import _factory
    from lorag_harness.registry import GraderContext

    s1 = adapters[0]
    with pytest.raises(LoragError, match="was trained on"):
        _factory("s1", needs_adapter=True)(s1.out, GraderContext(base_model=None))
    grader = _factory("s1", needs_adapter=True)(s1.out, GraderContext(base_model=s1.base_model))
    assert grader.adapter == s1.out
