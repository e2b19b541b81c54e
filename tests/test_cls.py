"""Classification-head grader and `lorag train cls`, on the 2-layer Llama from conftest."""
import json
import random
from collections import Counter

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from lorag_harness.cli.app import cli
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
from lorag_harness.testing import SAMPLE_PAIRS, check_grader


def train(base, out, *extra, pairs="40"):
    args = ["train", "cls", "--base-model", base, "--out", str(out), "--train-pairs", pairs, "--steps", "3",
            "--batch-size", "8", "--calibration-pairs", "40", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "lora"
    train(tiny_model_dir, out, "--mode", "lora", "--r", "4")
    return out


def test_lora_folder_holds_the_trained_head_and_reloads_with_the_same_scores(lora_dir):
    from lorag_harness.graders.cls_head import ClsHeadGrader

    assert (lora_dir / "adapter_config.json").is_file()
    saved = load_file(lora_dir / "adapter_model.safetensors")
    assert any("score" in k for k in saved)  # the head, through modules_to_save
    manifest = json.loads((lora_dir / "manifest.json").read_text())
    grader = ClsHeadGrader(str(lora_dir))  # checks the manifest's probe scores (recorded before saving)
    probe = [Pair(r["query"], r["document"], r["label"]) for r in manifest["probe"]]
    np.testing.assert_allclose(grader.probabilities(probe, bf16=False), [r["p"] for r in manifest["probe"]], atol=1e-5)
    assert grader.threshold == manifest["calibration"]["threshold"] and grader.notes == []
    check_grader(grader)


def test_left_and_right_padding_give_the_same_scores(lora_dir):
    from lorag_harness.graders.cls_head import ClsHeadGrader

    grader = ClsHeadGrader(str(lora_dir))
    pairs = list(SAMPLE_PAIRS)  # documents of different lengths: padding in every batch
    np.testing.assert_allclose(grader.probabilities(pairs, side="left", bf16=False),
                               grader.probabilities(pairs, side="right", bf16=False), atol=1e-5)


@pytest.mark.integration  # two more trainings (lora is in the default run)
@pytest.mark.parametrize("mode", ["full", "head"])
def test_full_and_head_modes(tiny_model_dir, tmp_path, mode):
    from transformers import AutoModelForCausalLM

    from lorag_harness.graders.cls_head import ClsHeadGrader

    manifest = train(tiny_model_dir, tmp_path / mode, "--mode", mode, "--no-bf16")
    assert manifest["hyper"]["mode"] == mode and (tmp_path / mode / "config.json").is_file()
    grader = ClsHeadGrader(str(tmp_path / mode))
    check_grader(grader)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).model.layers[0].self_attn.q_proj.weight
    trained = grader.model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(base, trained) == (mode == "head")  # head: the backbone stays frozen


@pytest.mark.parametrize("mode,expected", [("none", (10, 30)), ("over", (30, 30)), ("under", (10, 10)),
                                           ("both", (20, 20))])
def test_balancing_yields_the_asked_class_counts(mode, expected):
    from lorag_harness.trainers.batching import balance

    pairs = [Pair(f"q{i}", f"d{i}", i < 10) for i in range(40)]
    out = balance(pairs, mode, random.Random(0))
    counts = Counter(p.label for p in out)
    assert (counts[True], counts[False]) == expected
    assert set(out) <= set(pairs)


@pytest.mark.integration  # a training at 12% prevalence
def test_class_weights_and_prevalence_reach_the_manifest(tiny_model_dir, tmp_path):
    manifest = train(tiny_model_dir, tmp_path / "w", "--mode", "head", "--positive-rate", "0.25", "--no-bf16")
    m = manifest["metrics"]
    assert m["positives"] == 10 and m["training_pairs"] == 40  # 25% of 40 pairs
    n, pos = m["rows"], m["positives"]
    assert manifest["hyper"]["class_weights"] == pytest.approx([n / (2 * (n - pos)), n / (2 * pos)])
    assert manifest["calibration"]["positive_rate"] == pytest.approx(0.25)
    balanced = train(tiny_model_dir, tmp_path / "b", "--mode", "head", "--positive-rate", "0.25", "--balance", "over",
                     "--no-bf16")
    assert balanced["metrics"]["positives"] == 30 and balanced["hyper"]["class_weights"] == pytest.approx([1.0, 1.0])


def test_bad_cls_folders_are_one_line_errors(tmp_path, lora_dir, tiny_model_dir):
    from lorag_harness.graders.cls_head import ClsHeadGrader

    with pytest.raises(LoragError, match="no such cls model folder"):
        ClsHeadGrader(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoragError, match="not a cls model folder"):
        ClsHeadGrader(str(tmp_path / "empty"))
    with pytest.raises(LoragError, match="does not reproduce"):  # the adapter on another base model
        from conftest import make_tiny_llama
        from lorag_harness.backends.lm import load_tokenizer

        other = tmp_path / "other-base"
        make_tiny_llama(load_tokenizer(tiny_model_dir), seed=3).save_pretrained(other)
        load_tokenizer(tiny_model_dir).save_pretrained(other)
        ClsHeadGrader(str(lora_dir), base_model=str(other))
    result = CliRunner().invoke(cli, ["bench", "-g", f"cls:{tmp_path / 'empty'}", "-t", "s1-relevance",
                                      "--eval-pairs", "8", "--train-pairs", "8", "--no-cache"])
    assert result.exit_code == 2 and "not a cls model folder" in result.output and "Traceback" not in result.output


def test_training_says_what_the_loader_dropped(tiny_model_dir, tmp_path, jsonl_writer):
    rows = [{"query": q, "document": f"story {d} about {'oil' if d % 2 else 'wheat'}", "label": (q == "oil") == bool(d % 2)}
            for d in range(12) for q in ("oil", "wheat")]
    data = jsonl_writer(tmp_path / "pairs.jsonl", rows + rows[:3])
    out = CliRunner().invoke(cli, ["train", "cls", "--base-model", tiny_model_dir, "--out", str(tmp_path / "m"), "-d",
                                   f"jsonl:{data}", "--steps", "1", "--batch-size", "4", "--calibration-pairs", "0"])
    assert out.exit_code == 0, out.output
    assert "note:" in out.output and "3 duplicate pairs removed" in " ".join(out.output.split())
