import json
import math
import random

import pytest
import torch

from lorag_harness.backends import lm
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
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
    from lorag_harness.backends.prompts import PREFILL

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
    # no validation slice here (threshold fitted on training pairs, last state saved); see the tests below
    s1 = TrainConfig(stage="s1", out=str(out / "s1"), steps=25, val_pairs=0, **common)
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
        # without a validation slice the threshold is fitted on training pairs
        assert c["pairs"] == min(256, len(r8_small.train_pairs)) and c["on"] == "training"
        assert 0.0 <= c["threshold"] <= 1.0
        g = LMGrader("s", base_model=tiny_model_dir, adapter=cfg.out, max_doc_tokens=24)
        assert g.threshold == c["threshold"]
        pairs = r8_small.eval_pairs[:12]
        assert [j.relevant for j in g.grade(pairs)] == [j.score >= c["threshold"] for j in g.grade(pairs)]
    assert LMGrader("s", base_model=tiny_model_dir, adapter=adapters[0].out, threshold=0.3).threshold == 0.3
    assert LMGrader("base", base_model=tiny_model_dir).threshold == 0.5


def test_grader_folds_the_adapter_into_the_weights(adapters, r8_small, tiny_model_dir):
    from lorag_harness.graders.lm_graders import LMGrader
    from lorag_harness.graders.lm_scoring import score_true_false
    from lorag_harness.backends import prompts

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
    from lorag_harness.api.registry import GraderContext

    s1 = adapters[0]
    with pytest.raises(LoragError, match="was trained on"):
        _factory("s1", needs_adapter=True)(s1.out, GraderContext(base_model=None))
    grader = _factory("s1", needs_adapter=True)(s1.out, GraderContext(base_model=s1.base_model))
    assert grader.adapter == s1.out


# --- diagnostics, weak runs, time budget, objective -------------------------------------------

def random_label_pairs(path, n_docs=60, seed=0):
    """Pairs whose labels are coin flips: no model can learn them."""
    rng = random.Random(seed)
    words = "oil grain ships wheat bank rates trade gold coffee sugar jobs prices".split()
    rows = []
    for i in range(n_docs):
        doc = f"doc {i}: " + " ".join(rng.choice(words) for _ in range(12))
        for q in ("news about oil", "news about grain"):
            rows.append({"query": q, "document": doc, "label": rng.random() < 0.5})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_train_args(tiny_model_dir, out, *extra):
    return ["train", "s1", "--base-model", tiny_model_dir, "--out", str(out), "--quant", "none", "--steps", "12",
            "--batch-size", "4", "--max-doc-tokens", "16", "--r", "4", "--alpha", "8", "--lr", "1e-3",
            "--val-pairs", "40", "--val-every", "4", *extra]


def test_random_labels_are_a_weak_run_with_exit_3(tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from lorag_harness.cli.app import cli

    data = random_label_pairs(tmp_path / "random.jsonl")
    result = CliRunner().invoke(cli, tiny_train_args(tiny_model_dir, tmp_path / "a", "--dataset", f"jsonl:{data}"))
    assert result.exit_code == 3, result.output
    assert "weak adapter" in result.output and "Likely causes" in result.output and "--allow-weak" in result.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["weak"] is True and manifest["weak_reasons"]
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()  # still saved
    # the grader built from it says so
    from lorag_harness.graders.lm_graders import LMGrader

    with pytest.warns(UserWarning, match="weak adapter"):
        LMGrader("s1", base_model=tiny_model_dir, adapter=str(tmp_path / "a"))
    accepted = CliRunner().invoke(cli, tiny_train_args(tiny_model_dir, tmp_path / "b", "--dataset", f"jsonl:{data}",
                                                       "--allow-weak"))
    assert accepted.exit_code == 0, accepted.output
    assert "weak adapter" in accepted.output
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["weak"] is True


def test_verdict_names_the_prior_and_chance_auc():
    from lorag_harness.trainers.diagnostics import hanley_mcneil, loss_note, prior_entropy, verdict

    prior = prior_entropy([True, False] * 50)
    assert prior == pytest.approx(0.6931, abs=1e-4)
    assert prior_entropy([True] * 30 + [False] * 70) < prior
    lo, hi = hanley_mcneil(0.9, 96, 96)
    assert 0.85 < lo < 0.9 < hi < 0.95
    assert verdict(0.30, prior, 0.9, (lo, hi)) == []
    assert any("label prior" in r for r in verdict(0.69, prior, 0.9, (lo, hi), "training-pair"))
    # a validated run is judged by its validation: a 10-batch loss mean is noisier than held-out AUC
    assert verdict(0.69, prior, 0.9, (lo, hi), loss_counts=False) == []
    assert "step 40, validation ROC-AUC 0.939" in loss_note(0.79, prior, {"step": 40, "auc": 0.939})
    assert loss_note(0.30, prior, {"step": 40, "auc": 0.939}) is None
    assert any("near chance" in r for r in verdict(0.69, prior, 0.55, hanley_mcneil(0.55, 96, 96), loss_counts=False))
    assert any("near chance" in r for r in verdict(0.30, prior, 0.55, hanley_mcneil(0.55, 96, 96)))
    # a high AUC on a handful of pairs is still not evidence: its interval reaches 0.5
    assert any("near chance" in r for r in verdict(0.30, prior, 0.7, hanley_mcneil(0.7, 4, 4)))


def test_validation_slice_is_held_out_by_document(r8_small):
    from lorag_harness.trainers.diagnostics import split_by_document

    fit, val = split_by_document(r8_small.train_pairs, 12, seed=13)
    assert len(val) >= 12 and {p.label for p in val} == {True, False}
    assert len(fit) + len(val) == len(r8_small.train_pairs)
    assert not {p.document for p in fit} & {p.document for p in val}
    eval_keys = {p.content_hash() for p in r8_small.eval_pairs} | {p.document for p in r8_small.eval_pairs}
    assert not {p.content_hash() for p in val} & eval_keys and not {p.document for p in val} & eval_keys
    assert split_by_document(r8_small.train_pairs, 0, 13) == (r8_small.train_pairs, [])


def test_best_validation_state_is_the_one_saved(tiny_model_dir, r8_small, tmp_path):
    from sklearn.metrics import roc_auc_score

    from lorag_harness.backends import prompts
    from lorag_harness.graders.lm_scoring import score_true_false
    from lorag_harness.trainers.diagnostics import split_by_document

    cfg = TrainConfig(stage="s1", out=str(tmp_path / "s1"), base_model=tiny_model_dir, quant="none", steps=16,
                      batch_size=4, max_doc_tokens=16, r=4, alpha=8, lr=2e-2, val_pairs=16, val_every=2, patience=0)
    m = train(cfg, r8_small)
    v = m["validation"]
    aucs = [c["auc"] for c in v["curve"]]
    assert v["best_auc"] == pytest.approx(max(aucs), abs=1e-4) and m["metrics"]["steps_run"] == 16
    assert v["best_step"] != v["curve"][-1]["step"]  # at this lr the last state is not the best one
    _, val = split_by_document(r8_small.train_pairs, 16, cfg.seed)
    assert v["pairs"] == len(val) == m["calibration"]["pairs"] and m["calibration"]["on"] == "validation"
    assert m["examples"] == len(r8_small.train_pairs) - len(val)
    model = lm.load_model(tiny_model_dir, cfg.out)
    tok = lm.load_tokenizer(tiny_model_dir)
    seqs = [prompts.encode(tok, p.query, p.document, prompts.PREFILL, 16) for p in val]
    scores = score_true_false(model, seqs, prompts.single_token(tok, " true"), prompts.single_token(tok, " false"),
                              tok.pad_token_id)
    assert roc_auc_score([p.label for p in val], scores) == pytest.approx(v["best_auc"], abs=1e-4)
    assert roc_auc_score([p.label for p in val], scores) != pytest.approx(aucs[-1], abs=1e-3)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45)])
def test_time_budget_parses(text, seconds):
    from lorag_harness.trainers.diagnostics import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10 minutes", "-5m", "0s", "m", "1e3s"])
def test_bad_time_budget_is_one_clear_error(bad, tmp_path):
    from click.testing import CliRunner

    from lorag_harness.cli.app import cli

    result = CliRunner().invoke(cli, ["train", "s1", "--out", str(tmp_path / "x"), "--time-budget", bad])
    assert result.exit_code == 2 and "--time-budget" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_time_budget_sets_the_steps_within_the_epoch_cap(tiny_model_dir, r8_small, tmp_path):
    from lorag_harness.trainers.train import budget_steps

    cfg = TrainConfig(stage="s1", time_budget=100.0, val_every=10)
    # first step discarded (warm-up); 1 s per step and 5 s per validation: 100 s hold 4 + (100-9-5)/1.5 steps
    assert budget_steps(cfg, 10_000, [9.0, 1.0, 1.0, 1.0], 5.0, 9.0) == 4 + int(86 / 1.5)
    assert budget_steps(cfg, 30, [9.0, 1.0, 1.0, 1.0], 5.0, 9.0) == 30  # never more than the epochs allow
    assert budget_steps(cfg, 30, [9.0, 99.0, 99.0, 99.0], 5.0, 300.0) == 4  # never fewer than already run
    # probe steps that drew batches twice the epoch's mean length: the plan uses the mean step's cost
    assert budget_steps(cfg, 10_000, [9.0, 1.0, 1.0, 1.0], 5.0, 9.0, [800, 800, 800, 800], 400.0) == 4 + int(86 / 1.0)
    # a generous budget runs the epoch cap (1 epoch of the training pairs left after validation)
    m = train(TrainConfig(stage="s1", out=str(tmp_path / "b"), base_model=tiny_model_dir, quant="none",
                          batch_size=4, max_doc_tokens=16, r=4, alpha=8, val_pairs=8, time_budget=3600), r8_small)
    assert m["metrics"]["steps_run"] == m["hyperparameters"]["steps"] == math.ceil(m["examples"] / 4)


def slow_machine(monkeypatch, train_s_per_token: float) -> None:
    """The budget probe measures this rate (forwards free), whatever the machine."""
    from lorag_harness.trainers import budget

    monkeypatch.setattr(budget, "measure_rate", lambda *a, **k: {"train_s_per_token": train_s_per_token,
                                                                 "forward_s_per_token": 0.0, "probe_seconds": 0.0})


@pytest.mark.parametrize("refit", [6, 30])
@pytest.mark.parametrize("min_steps", [0, 9])
def test_a_grown_budget_runs_the_steps_it_grew_for_whatever_they_cost_after_the_probe(tiny_model_dir, r8_small,
                                                                                        tmp_path, monkeypatch, refit,
                                                                                        min_steps):
    from lorag_harness.trainers import train as train_module
    from lorag_harness.trainers.train import TrainConfig, train

    # the probe measures a slow machine: the budget grows to hold a useful run (min_steps 0, as `lorag
    # train s1` sets it) or the demo's min_steps; the first steps then run slower (the re-plan would
    # cut the run to 6) or faster (it would fill the grown budget with 30, beyond the user's own
    # budget): a grown run runs the steps it grew for
    slow_machine(monkeypatch, 1.0 / 64)
    monkeypatch.setattr(train_module, "budget_steps", lambda *a, **k: refit)
    cfg = TrainConfig(stage="s1", out=str(tmp_path / "s1"), base_model=tiny_model_dir, quant="none", batch_size=4,
                      max_doc_tokens=16, r=4, alpha=8, val_pairs=0, time_budget=5.0, time_budget_max=3600.0,
                      min_steps=min_steps)
    m = train(cfg, r8_small)
    planned = m["budget"]["steps"]
    assert planned >= max(min_steps, m["budget"]["useful"]) > 6 and planned not in (6, 30)
    assert m["budget"]["grown_from"] == 5.0 and m["metrics"]["steps_run"] == m["hyperparameters"]["steps"] == planned


def test_explicit_bf16_where_it_is_slow_is_planned_from_a_float32_step_and_refused_before_any_bf16_step(
        tiny_model_dir, r8_small, tmp_path, monkeypatch):
    import contextlib

    from lorag_harness.backends import precision
    from lorag_harness.trainers.budget import BudgetTooSmall
    from lorag_harness.trainers.train import TrainConfig, train

    # an AVX2-only CPU: the probe measured bf16 40x slower; one real bf16 step there takes minutes
    monkeypatch.setattr(precision, "probe", lambda refresh=False: {"faster": "fp32", "ratio": 40.0})
    entered = []
    real = precision.autocast

    def spy(used, device_type="cpu"):
        @contextlib.contextmanager
        def ctx():
            entered.append(used)
            with real(used, device_type):
                yield
        return ctx()

    monkeypatch.setattr(precision, "autocast", spy)
    cfg = TrainConfig(stage="s1", out=str(tmp_path / "s1"), base_model=tiny_model_dir, quant="none", batch_size=4,
                      max_doc_tokens=16, r=4, alpha=8, val_pairs=8, precision="bf16", time_budget=1.0)
    with pytest.raises(BudgetTooSmall, match=r"estimated from a float32 step x the probe's bf16 ratio") as info:
        train(cfg, r8_small)
    assert "--precision fp32 (bf16 measured 40x slower than fp32 here)" in str(info.value)
    assert "bf16" not in entered  # refused from the float32 estimate: no bf16 forward ran
    assert info.value.rate["steps"] < 40


def test_a_run_below_its_target_auc_goes_on_while_the_budget_and_epochs_allow(tiny_model_dir, r8_small, tmp_path,
                                                                               monkeypatch):
    from lorag_harness.trainers.train import TrainConfig, train

    # a slow machine's plan: the budget grows to hold the 4 minimum steps (~2,000 s), up to 3 hours
    slow_machine(monkeypatch, 100.0 / 64)
    lines = []
    common = dict(stage="s1", base_model=tiny_model_dir, quant="none", batch_size=4, max_doc_tokens=16, r=4, alpha=8,
                  val_pairs=8, val_every=2, patience=0, time_budget=5.0, time_budget_max=3 * 3600.0, min_steps=4)
    m = train(TrainConfig(out=str(tmp_path / "t"), target_auc=0.999, **common), r8_small, log=lines.append)
    cap = m["hyperparameters"]["steps_cap"]
    assert 4 < cap and m["metrics"]["steps_run"] == cap  # a tiny random model never ranks at 0.999: on to the cap
    assert m["metrics"]["extended_at"][:2] == [4, 6] and [c["step"] for c in m["validation"]["curve"]][:4] == [0, 2, 4, 6]
    assert any("is below the target 0.999 after 4 steps: 2 more steps" in line for line in lines)
    plain = train(TrainConfig(out=str(tmp_path / "p"), **common), r8_small)  # no target: the 4 planned steps
    assert plain["metrics"]["steps_run"] == 4 and plain["metrics"]["extended_at"] == []
    # patience: a run that stopped improving is not extended; an extension logged is one run
    m = train(TrainConfig(out=str(tmp_path / "q"), target_auc=0.999, **(common | {"patience": 2})), r8_small)
    assert all(m["metrics"]["steps_run"] > e for e in m["metrics"]["extended_at"]), m["metrics"]
    for bad, message in ((dict(stage="s2", target_auc=0.9), "stage s1 only"), (dict(target_auc=0.9, val_pairs=0), "--val-pairs"),
                         (dict(target_auc=1.2), "between 0.5 and 1"),
                         (dict(target_auc=0.9, time_budget=60.0), "--time-budget-max")):
        with pytest.raises(LoragError, match=message):
            TrainConfig(**bad)


def test_binary_objective_is_cross_entropy_over_the_two_answer_logits(tokenizer):
    import torch.nn.functional as F
    from conftest import make_tiny_llama

    from lorag_harness.trainers.loss import value_ce

    model = make_tiny_llama(tokenizer)
    pairs = [PAIR, Pair("grain", "wheat exports rose sharply this year", False, "grain", "shipping", "p3")]
    batch = collate(build_examples(tokenizer, pairs, None, "s1"), tokenizer.pad_token_id)
    t, f = 2629, 7065
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    rows, cols = torch.nonzero(batch["weights"][:, 1:] > 0, as_tuple=True)
    probs = logits[rows, cols].softmax(-1)
    token, binary = value_ce(model, batch, t, f)
    assert binary.item() == pytest.approx(F.cross_entropy(logits[rows, cols][:, [t, f]], torch.tensor([0, 1])).item(), rel=1e-5)
    assert token.item() == pytest.approx(masked_loss(model, batch).item(), rel=1e-5)
    # the token loss is the binary one plus the mass on every other token
    outside = -torch.log(probs[:, t] + probs[:, f]).mean()
    assert token.item() == pytest.approx(binary.item() + outside.item(), rel=1e-4)
    with pytest.raises(ValueError, match="binary objective"):
        value_ce(model, collate(build_examples(tokenizer, pairs, None, "s2"), tokenizer.pad_token_id), t, f)
    with pytest.raises(LoragError, match="binary objective"):
        TrainConfig(stage="s2", objective="binary")


def test_balanced_batches_are_half_positive():
    from lorag_harness.trainers.batching import balanced_batches

    exs = [Example([1] * n, [0.0] * (n - 1) + [1.0], n % 4 == 0) for n in range(2, 42)]
    batches = balanced_batches(exs, 8, random.Random(0))
    assert all(sum(e.label for e in b) * 2 == len(b) for b in batches)
    assert {id(e) for b in batches for e in b} == {id(e) for e in exs}  # every example, minority repeated


def test_cli_reports_the_steps_chosen_for_the_time_budget(tiny_model_dir, r8_small, tmp_path):
    from click.testing import CliRunner

    from lorag_harness.cli.app import cli

    args = tiny_train_args(tiny_model_dir, tmp_path / "t", "--train-pairs", "40", "--time-budget", "1h",
                           "--allow-weak")
    args[args.index("--steps") : args.index("--steps") + 2] = ["--epochs", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert m["hyperparameters"]["time_budget"] == 3600 and m["hyperparameters"]["steps"] == m["hyperparameters"]["steps_cap"]
    assert f"{m['hyperparameters']['steps']} steps chosen" in " ".join(result.output.split())


def test_document_batches_keep_a_documents_pairs_together(r8_small, tokenizer):
    from lorag_harness.trainers.batching import document_batches

    exs = build_examples(tokenizer, r8_small.train_pairs, r8_small, "s1", max_doc_tokens=16)
    batches = document_batches(exs, 4, random.Random(0))
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in exs)
    where = {}
    for i, b in enumerate(batches):
        assert len(b) <= 4
        for e in b:
            assert where.setdefault(e.group, i) == i  # every pair of a document in one batch
    assert all({e.label for e in b} == {True, False} for b in batches)  # one relevant, one not, per document


def _options(**given):
    base = dict(out="a", base_model=None, init_adapter=None, loss="masked", weight=5.0, quant="none", seed=13)
    return base | given


def test_default_s1_profile_fits_a_time_budget_unless_a_count_is_given():
    from lorag_harness.trainers.cli import make_config

    default = make_config("s1", _options())
    assert default.time_budget and default.objective == "binary" and default.batches == "balanced"
    assert make_config("s1", _options(steps=30)).time_budget is None  # --steps alone: run them all
    assert make_config("s1", _options(epochs=1.0)).time_budget is None
    assert make_config("s1", _options(steps=30, time_budget="2m")).time_budget == 120
    # the binary objective needs the masked loss: --loss full trains the token objective
    assert make_config("s1", _options(loss="full")).objective == "token"
    with pytest.raises(LoragError, match="binary objective"):
        make_config("s1", _options(loss="full", objective="binary"))


def test_prefix_cached_loss_is_the_same_loss(tokenizer):
    """The shared prompt prefix run once and reused as KV cache: same loss values."""
    from conftest import make_tiny_llama

    from lorag_harness.graders.prefix_cache import common_prefix
    from lorag_harness.trainers.loss import value_ce
    from lorag_harness.trainers.train import cut_prefix

    model = make_tiny_llama(tokenizer).eval()
    pairs = [PAIR, Pair("grain", "wheat exports rose sharply this year", False, "grain", "shipping", "p3"),
             Pair("news about gold", "gold prices and mining output", True, "gold", "gold", "p4")]
    for stage in ("s1", "s2"):
        examples = build_examples(tokenizer, pairs, None, stage)
        p = common_prefix([e.input_ids for e in examples])
        assert p > 20  # the chat template and the instruction
        cut = collate(cut_prefix(examples, p), tokenizer.pad_token_id)
        cut["prefix_ids"] = torch.tensor([examples[0].input_ids[:p]])
        whole = collate(examples, tokenizer.pad_token_id)
        with torch.no_grad():
            assert masked_loss(model, cut).item() == pytest.approx(masked_loss(model, whole).item(), rel=1e-4)
            if stage == "s1":
                got, want = value_ce(model, cut, 2629, 7065), value_ce(model, whole, 2629, 7065)
                assert got[1].item() == pytest.approx(want[1].item(), rel=1e-4)


@pytest.mark.parametrize("config", ["trainers.rerank_train:RerankConfig", "trainers.cls_train:ClsConfig",
                                    "trainers.embedding_train:EmbeddingConfig"])
@pytest.mark.parametrize("bad, message", [({"steps": 0}, "--steps must be >= 1, not 0"),
                                          ({"epochs": 0}, "--epochs and --lr must be > 0"),
                                          ({"lr": -1e-4}, "--epochs and --lr must be > 0"),
                                          ({"warmup": 1.0}, r"--warmup in \[0, 1\)")])
def test_trainer_configs_refuse_a_bad_schedule(config, bad, message):
    from lorag_harness.api.registry import load_target

    cls = load_target(f"lorag_harness.{config}")
    cls(out="x").check()  # the defaults pass
    with pytest.raises(LoragError, match=message):
        cls(out="x", **bad).check()


@pytest.mark.parametrize("stage", ["s1", "s2"])
def test_shared_prefix_training_has_the_full_forwards_loss_and_lora_gradients(tokenizer, stage):
    """The shared prefix run once per batch WITH gradients (its KV cache expanded over rows of
    different lengths, right-padded): loss and every LoRA gradient equal the plain full forward's."""
    from conftest import make_tiny_llama
    from peft import LoraConfig, get_peft_model

    from lorag_harness.graders.prefix_cache import common_prefix
    from lorag_harness.trainers.loss import value_ce
    from lorag_harness.trainers.train import TARGET_MODULES, cut_prefix

    torch.manual_seed(1)
    model = get_peft_model(make_tiny_llama(tokenizer), LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGET_MODULES, init_lora_weights=False))
    model.train()
    pairs = [PAIR, Pair("grain", "wheat exports rose sharply this year after the drought in the south", False,
                        "grain", "shipping", "p3"),
             Pair("news about gold", "gold prices", True, "gold", "gold", "p4")]
    examples = build_examples(tokenizer, pairs, None, stage)
    assert len({len(e.input_ids) for e in examples}) == 3  # rows of different lengths: right padding in play
    p = common_prefix([e.input_ids for e in examples])
    assert p > 20
    cut = collate(cut_prefix(examples, p), tokenizer.pad_token_id)
    cut["prefix_ids"] = torch.tensor([examples[0].input_ids[:p]])
    whole = collate(examples, tokenizer.pad_token_id)
    loss = (lambda b: value_ce(model, b, 2629, 7065)[1]) if stage == "s1" else (lambda b: masked_loss(model, b))

    def run(batch):
        model.zero_grad(set_to_none=True)
        value = loss(batch)
        value.backward()
        return value.item(), {k: v.grad.clone() for k, v in model.named_parameters() if v.requires_grad}

    want_loss, want = run(whole)
    got_loss, got = run(cut)
    assert got_loss == pytest.approx(want_loss, abs=1e-5)
    assert want and set(got) == set(want)
    assert all(w.abs().max() > 0 for w in want.values())  # every LoRA matrix gets a gradient, prefix layers too
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-4, msg=k)
