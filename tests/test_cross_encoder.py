"""Cross-encoder grader and `lorag train reranker`, on a 2-layer BERT built in-process."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_bert

from lorag_harness.cli.app import cli
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Dataset, Pair
from lorag_harness.testing import SAMPLE_PAIRS, check_grader


def raw_logits(folder, pairs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok([p.query for p in pairs], [p.document for p in pairs], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.numpy()


def test_untrained_model_keeps_the_contract_and_says_its_threshold_is_not_calibrated(tiny_bert, capsys):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    grader = CrossEncoderGrader(tiny_bert)
    check_grader(grader)
    assert grader.threshold == 0.5 and any("no calibrated threshold" in n for n in grader.notes)
    assert "no calibrated threshold" in capsys.readouterr().err
    probs = grader.probabilities(list(SAMPLE_PAIRS))
    expected = 1 / (1 + np.exp(-raw_logits(tiny_bert, SAMPLE_PAIRS)[:, 0]))  # one logit: sigmoid
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_two_logit_model_uses_softmax(tmp_path):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    folder = make_tiny_bert(tmp_path / "two", num_labels=2)
    probs = CrossEncoderGrader(folder).probabilities(list(SAMPLE_PAIRS))
    expected = torch.softmax(torch.tensor(raw_logits(folder, SAMPLE_PAIRS)), -1)[:, 1].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_bad_model_folders_are_one_line_errors(tmp_path, tiny_bert):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    with pytest.raises(LoragError, match="no such model folder"):
        CrossEncoderGrader(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoragError, match="no config.json"):
        CrossEncoderGrader(str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(LoragError, match="cannot load"):
        CrossEncoderGrader(str(broken))
    bad_cut = tmp_path / "bad-cut"
    shutil.copytree(tiny_bert, bad_cut)
    (bad_cut / "manifest.json").write_text(json.dumps({"calibration": {"threshold": 7}}))
    with pytest.raises(LoragError, match="threshold must be a number in"):
        CrossEncoderGrader(str(bad_cut))
    result = CliRunner().invoke(cli, ["bench", "-g", f"cross-encoder:{tmp_path / 'empty'}", "-t", "s1-relevance",
                                      "--eval-pairs", "8", "--train-pairs", "8", "--no-cache"])
    assert result.exit_code == 2 and "no config.json" in result.output and "Traceback" not in result.output


def test_fingerprint_follows_the_model_files(tmp_path):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    folder = make_tiny_bert(tmp_path / "m", seed=0)
    first = CrossEncoderGrader(folder).fingerprint()
    assert CrossEncoderGrader(folder).fingerprint() == first
    make_tiny_bert(tmp_path / "m", seed=1)  # retrained in place
    assert CrossEncoderGrader(folder).fingerprint() != first


def train(tiny_bert, out, *extra):
    args = ["train", "reranker", "--from", tiny_bert, "--out", str(out), "--train-pairs", "40", "--steps", "3",
            "--batch-size", "8", "--calibration-pairs", "40", "--embedder", tiny_bert, *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("extra", [[], pytest.param(["--loss", "lambda", "--negatives", "3"], marks=pytest.mark.integration),
                                   ["--lora", "--r", "4"], pytest.param(["--bf16"], marks=pytest.mark.integration)],
                         ids=["bce", "lambda", "lora", "bf16"])
def test_train_reranker_end_to_end(tiny_bert, tmp_path, extra):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    manifest = train(tiny_bert, tmp_path / "rr", *extra)
    assert manifest["base_model"] == tiny_bert and manifest["data_hash"] and manifest["metrics"]["steps"] == 3
    cut = manifest["calibration"]["threshold"]
    assert manifest["calibration"]["pairs"] == 40 and 0.0 <= cut <= 1.0
    c = manifest["calibration"]
    assert 0.0 <= c["auc_low"] <= c["auc"] <= c["auc_high"] <= 1.0  # the interval graders check for inversion
    assert not (tmp_path / "rr" / "adapter_config.json").exists()  # LoRA is merged into a plain model
    grader = CrossEncoderGrader(str(tmp_path / "rr"))  # reproduces the manifest's probe scores, or raises
    assert grader.threshold == cut and grader.notes == []
    # the threshold was fitted on the scores this grader gives (float32, as loaded), not the trainer's bf16 ones
    probe = manifest["probe"]
    pairs = [Pair(r["query"], r["document"], r["label"]) for r in probe]
    assert np.allclose(grader.probabilities(pairs), [r["p"] for r in probe], atol=1e-6)
    check_grader(grader)


def test_a_changed_model_does_not_pass_as_the_trained_one(tiny_bert, tmp_path):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    train(tiny_bert, tmp_path / "rr")
    manifest = json.loads((tmp_path / "rr" / "manifest.json").read_text())
    make_tiny_bert(tmp_path / "rr", seed=5)  # other weights under the same manifest
    (tmp_path / "rr" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LoragError, match="does not reproduce"):
        CrossEncoderGrader(str(tmp_path / "rr"))


def test_threshold_comes_from_training_pairs_only(tiny_bert, tmp_path, r8_small):
    from lorag_harness.trainers.rerank_train import RerankConfig, train_reranker

    other_eval = r8_small.eval_pairs[::-1][:10]
    cuts = []
    for i, eval_pairs in enumerate((r8_small.eval_pairs, other_eval)):
        ds = Dataset("r8", r8_small.train_pairs, eval_pairs)
        cfg = RerankConfig(out=str(tmp_path / f"m{i}"), base_model=tiny_bert, steps=2, batch_size=8)
        cuts.append(train_reranker(cfg, ds)["calibration"]["threshold"])
    assert cuts[0] == cuts[1]


def test_hard_negatives_never_share_the_query_topic(tiny_bert, r8_small):
    from lorag_harness.trainers.rerank_train import mine_hard_negatives

    rows = mine_hard_negatives(r8_small.train_pairs, 3, embedder=tiny_bert)
    topic = {p.document: p.document_topic for p in r8_small.train_pairs}
    query_topic = {p.query: p.query_topic for p in r8_small.train_pairs}
    assert len(rows) == sum(p.label for p in r8_small.train_pairs)
    for row in rows:
        assert row["labels"] == [1.0, 0.0, 0.0, 0.0] and len(row["docs"]) == 4
        assert topic[row["docs"][0]] == query_topic[row["query"]]
        assert all(topic[d] != query_topic[row["query"]] for d in row["docs"][1:])


def test_bad_training_options_fail_before_training(tiny_bert, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, message in ((["--out", str(blocker)], "not a folder"), (["--out", str(tmp_path / "x"), "--batch-size", "0"], "--batch-size"),
                          (["--out", str(tmp_path / "x"), "--positive-rate", "1.5"], "positive-rate")):
        result = CliRunner().invoke(cli, ["train", "reranker", "--from", tiny_bert, *args])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.integration  # the packaged MiniLM embeds the corpus for rag-p5; several minutes under load
def test_demo_trains_and_compares_every_grader_and_times_each_stage(tiny_model_dir, tiny_bert, tmp_path, monkeypatch):
    from lorag_harness.trainers import profiles

    tiny = {"steps": 2, "batch_size": 4, "max_doc_tokens": 16, "calibration_pairs": 8}
    monkeypatch.setitem(profiles.PROFILES, "quick", {
        "s1": {**tiny, "val_pairs": 0}, "s2": tiny, "reranker": {"steps": 2, "batch_size": 4, "calibration_pairs": 8},
        "cls": {"steps": 2, "batch_size": 4, "max_doc_tokens": 16, "calibration_pairs": 8, "precision": "fp32"}})
    # two steps of a tiny random model do not learn; the demo stops at a weak S1 (tests/test_precision.py),
    # so here S1 counts as learned: the comparison downstream is what this test is about
    monkeypatch.setattr("lorag_harness.trainers.train.verdict", lambda *a, **k: [])
    out = tmp_path / "demo"
    args = ["demo", "--out-dir", str(out), "--base-model", tiny_model_dir, "--reranker-from", tiny_bert, "--with", "cls",
            "--train-pairs", "24", "--eval-pairs", "8", "--rag-queries", "2", "--s2-pairs", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]["s1-relevance"]) == {"base", f"s1:{out}/adapters/s1", f"s2:{out}/adapters/s2", "embedding",
                                                      f"cross-encoder:{out}/models/reranker", f"cls:{out}/models/cls"}
    assert f"cross-encoder:{out}/models/reranker" not in report["results"]["s2-reasoning"]  # it gives no reasons
    # S1 stops after the relevant value: only base and S2 write reasons; base keeps the timings of both runs
    assert set(report["results"]["s2-reasoning"]) == {"base", f"s2:{out}/adapters/s2"}
    assert set(report["timings"]["base"]) == {"s1-relevance", "s2-reasoning", "rag-p5"}
    assert report["tasks"] == ["s1-relevance", "s2-reasoning", "rag-p5"] and report["graders"].count("base") == 1
    assert {"train s1", "train s2", "train reranker", "train cls"} <= set(report["config"]["demo_stages"])
    assert any(c["test"] == "delong" for c in report["comparisons"]["s1-relevance"])
    again = CliRunner().invoke(cli, args)  # nothing retrained: the models are current
    assert again.exit_code == 0 and "reranker" in again.output and "is current" in again.output
    # a reranker that no longer loads: the LM graders' results are still written, marked partial
    manifest = out / "models" / "reranker" / "manifest.json"
    tampered = json.loads(manifest.read_text())
    tampered["probe"][0]["p"] = 0.0 if tampered["probe"][0]["p"] > 0.5 else 1.0
    manifest.write_text(json.dumps(tampered))
    broken = CliRunner().invoke(cli, args)
    assert broken.exit_code == 2 and "does not reproduce" in broken.output, broken.output
    report = json.loads((out / "report.json").read_text())
    assert f"s1:{out}/adapters/s1" in report["results"]["s1-relevance"] and "does not reproduce" in report["partial"]["error"]
    assert f"cross-encoder:{out}/models/reranker · s1-relevance" in report["partial"]["missing"]


def test_without_topics_only_labelled_negatives_are_mined(tiny_bert):
    from lorag_harness.api.types import Pair
    from lorag_harness.trainers.rerank_train import mine_hard_negatives

    pairs = [Pair("oil prices", "crude rose", True), Pair("oil prices", "bank rates", False),
             Pair("oil prices", "wheat crop", False), Pair("rates", "bank rates", True), Pair("rates", "opec output", False)]
    rows = {r["query"]: r for r in mine_hard_negatives(pairs, 5, embedder=tiny_bert)}
    assert sorted(rows["oil prices"]["docs"][1:]) == ["bank rates", "wheat crop"]
    assert rows["rates"]["docs"][1:] == ["opec output"]  # "crude rose" is unlabelled for this query: never a negative


def test_a_diverged_run_stops_with_one_line_and_saves_nothing(tiny_bert, tmp_path, r8_small):
    from lorag_harness.trainers.rerank_train import RerankConfig, train_reranker

    out = tmp_path / "nan"  # a positive weight of nan makes every loss nan: the model must not be saved as trained
    cfg = RerankConfig(out=str(out), base_model=tiny_bert, steps=2, batch_size=8, pos_weight=float("nan"))
    with pytest.raises(LoragError, match="training diverged: the loss was nan at step 1"):
        train_reranker(cfg, Dataset("r8", r8_small.train_pairs, r8_small.eval_pairs))
    assert not (out / "manifest.json").exists() and not (out / "model.safetensors").exists()
