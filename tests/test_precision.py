"""Precision chosen by measurement (lorag_harness/backends/precision.py), time budgets the first step cannot
eat (trainers/budget.py), the demo stopping at a weak S1, plain progress lines off a terminal."""
import os
import io
import json
import time

import pytest
from click.testing import CliRunner

from lorag_harness.backends import precision
from lorag_harness.cli.app import cli
from lorag_harness.errors import LoragError
from lorag_harness.api.registry import GraderContext


@pytest.fixture
def probe_says(monkeypatch):
    """Force the probe's answer (as LORAG_PRECISION_PROBE does on a CPU without native bf16)."""
    def force(answer):
        monkeypatch.setenv(precision.PROBE_ENV, answer)
    return force


def test_probe_is_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.delenv(precision.PROBE_ENV, raising=False)
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "_probed", {})
    calls = []

    def fake_measure(*a, **k):
        calls.append(1)
        return {"fp32_s": 0.001, "bf16_s": 0.02, "ratio": 20.0, "faster": "fp32"}

    monkeypatch.setattr(precision, "measure", fake_measure)
    assert precision.resolve("auto", "cpu") == "fp32"
    assert len(calls) == 2  # the batch shape and the decoding shape
    monkeypatch.setattr(precision, "_probed", {})  # a new process: read from the cache file
    assert precision.resolve("auto", "cpu") == "fp32" and precision.resolve("auto", "cpu", work="decode") == "fp32"
    assert len(calls) == 2
    stored = json.loads((tmp_path / precision.PROBE_FILE).read_text())
    assert stored[precision.machine_key()]["capability"] == precision.cpu_capability()
    monkeypatch.setattr(precision, "cpu_capability", lambda: "SOMETHING-ELSE")  # another machine kind: probed again
    monkeypatch.setattr(precision, "_probed", {})
    precision.resolve("auto", "cpu")
    assert len(calls) == 4


def test_real_probe_is_quick_and_answers(tmp_path, monkeypatch):
    result = precision.measure()
    assert result["faster"] in ("fp32", "bf16") and result["fp32_s"] > 0 and result["bf16_s"] > 0
    assert result["fp32_s"] < 1.0  # one small linear layer


def test_decoding_follows_its_own_probe(monkeypatch, tiny_model_dir, r8_small):
    """Where bf16 is faster for batches but not for decoding (one token for each of a few rows: casting
    the weights costs more than it saves), an LM grader scores in bf16 and writes reasons in float32."""
    import torch

    from lorag_harness.evaluation.runner import build_grader
    from lorag_harness.graders import lm_graders

    monkeypatch.setattr(precision, "probe", lambda refresh=False: {"faster": "bf16", "ratio": 0.35,
                                                                   "decode": {"faster": "fp32", "ratio": 1.3}})
    assert precision.resolve("auto", "cpu") == "bf16" and precision.resolve("auto", "cpu", work="decode") == "fp32"
    assert precision.resolve("bf16", "cpu", work="decode") == "bf16"  # an explicit choice wins
    seen = {}
    real_score, real_generate = lm_graders.score_with_prefix_cache, lm_graders.generate_continuations

    def score(*a, **k):
        seen["score"] = torch.is_autocast_enabled("cpu")
        return real_score(*a, **k)

    def generate(*a, **k):
        seen["generate"] = torch.is_autocast_enabled("cpu")
        return real_generate(*a, **k)

    monkeypatch.setattr(lm_graders, "score_with_prefix_cache", score)
    monkeypatch.setattr(lm_graders, "generate_continuations", generate)
    grader = build_grader("base", GraderContext(base_model=tiny_model_dir, max_doc_tokens=16))
    assert (grader.precision, grader.decode_precision) == ("bf16", "fp32")
    judgments = grader.grade(r8_small.eval_pairs[:2], reasons=True)
    assert seen == {"score": True, "generate": False} and all(j.raw_text for j in judgments)
    # cached judgments carry reasons: a grader decoding in another precision is another grader
    monkeypatch.setattr(precision, "probe", lambda refresh=False: {"faster": "bf16", "decode": {"faster": "bf16"}})
    other = build_grader("base", GraderContext(base_model=tiny_model_dir, max_doc_tokens=16))
    assert other.decode_precision == "bf16" and other.fingerprint() != grader.fingerprint()


def test_explicit_bf16_where_slow_runs_with_one_warning_line(monkeypatch, capsys):
    monkeypatch.setattr(precision, "probe", lambda refresh=False: {"faster": "fp32", "ratio": 12.5})
    monkeypatch.setattr(precision, "_warned", set())
    assert precision.resolve("bf16", "cpu") == "bf16"
    assert precision.resolve("bf16", "cpu") == "bf16"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "12.5× slower" in lines[0] and "--precision" in lines[0]
    with pytest.raises(LoragError, match="--precision"):
        precision.resolve("fp16", "cpu")


def test_machine_is_recorded():
    info = precision.machine("fp32")
    assert info["precision"] == "fp32" and info["cores"] >= 1 and info["cpu"] and info["cpu_capability"]
    assert info["cpu_capability"] in precision.describe(info)


# --- auto picks fp32 in every trainer and grader when bf16 is not faster ------------------------

def _trained_precisions(tiny_model_dir, tiny_bert, r8_small, tmp_path):
    from lorag_harness.trainers.cls_train import ClsConfig, train_cls
    from lorag_harness.trainers.profiles import PROFILES
    from lorag_harness.trainers.rerank_train import RerankConfig, train_reranker
    from lorag_harness.trainers.train import TrainConfig, train

    quick = PROFILES["quick"]
    tiny = dict(base_model=tiny_model_dir, steps=1, batch_size=4, max_doc_tokens=16, r=4, alpha=8, quant="none")
    s1 = {k: v for k, v in quick["s1"].items() if k not in ("time_budget", "val_pairs")}
    m1 = train(TrainConfig(stage="s1", out=str(tmp_path / "s1"), **{**s1, **tiny, "val_pairs": 0}), r8_small)
    s2 = {k: v for k, v in quick["s2"].items() if k not in ("steps", "calibration_pairs")}
    m2 = train(TrainConfig(stage="s2", out=str(tmp_path / "s2"), init_adapter=str(tmp_path / "s1"), **{**s2, **tiny}),
               r8_small)
    rr = train_reranker(RerankConfig(out=str(tmp_path / "rr"), base_model=tiny_bert, steps=1, batch_size=4,
                                     calibration_pairs=8, **{k: v for k, v in quick["reranker"].items()
                                                             if k not in ("epochs", "batch_size", "calibration_pairs")}),
                         r8_small)
    cls = train_cls(ClsConfig(out=str(tmp_path / "cls"), base_model=tiny_model_dir, steps=1, batch_size=4,
                              calibration_pairs=8, **{k: v for k, v in quick["cls"].items()
                                                      if k not in ("epochs", "batch_size", "max_doc_tokens")}),
                    r8_small)
    return {"s1": m1["hyperparameters"]["precision_used"], "s2": m2["hyperparameters"]["precision_used"],
            "reranker": rr["hyper"]["precision_used"], "cls": cls["hyper"]["precision_used"],
            "machine": m1["machine"]["precision"]}, (tmp_path / "rr", tmp_path / "cls")


def _grader_precisions(tiny_model_dir, rr, cls, context):
    from lorag_harness.evaluation.runner import build_grader

    base = build_grader("base", context)
    ce = build_grader(f"cross-encoder:{rr}", context)
    head = build_grader(f"cls:{cls}", context)
    return {"base": base.precision, "cross-encoder": "bf16" if ce.bf16 else "fp32",
            "cls": "bf16" if head.bf16 else "fp32"}


@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_auto_follows_the_probe_in_every_trainer_and_grader(faster, probe_says, tiny_model_dir, tiny_bert, r8_small,
                                                            tmp_path, monkeypatch):
    from lorag_harness.evaluation import calibration

    # a tiny random model may rank its 8 calibration pairs upside down; graders refuse that (test_inversion.py)
    monkeypatch.setattr(calibration, "check_manifest", lambda manifest, where: None)
    probe_says(faster)  # fp32: a CPU without native bf16 (AVX2); bf16: one where it measured faster
    trained, (rr, cls) = _trained_precisions(tiny_model_dir, tiny_bert, r8_small, tmp_path)
    assert trained == {"s1": faster, "s2": faster, "reranker": faster, "cls": faster, "machine": faster}
    context = GraderContext(base_model=tiny_model_dir, max_doc_tokens=16)
    assert _grader_precisions(tiny_model_dir, rr, cls, context) == {"base": faster, "cross-encoder": faster,
                                                                    "cls": faster}
    # an explicit choice wins over the probe; --quant bf16 is the former spelling of --precision bf16
    other = {"fp32": "bf16", "bf16": "fp32"}[faster]
    assert set(_grader_precisions(tiny_model_dir, rr, cls, GraderContext(base_model=tiny_model_dir,
                                                                         precision=other)).values()) == {other}
    assert set(_grader_precisions(tiny_model_dir, rr, cls, GraderContext(base_model=tiny_model_dir,
                                                                         quant="bf16")).values()) == {"bf16"}


def test_cli_precision_options(tmp_path):
    from lorag_harness.cli.bench import bench_options, config_from

    for args, want in (([], "auto"), (["--precision", "fp32"], "fp32"), (["--quant", "bf16"], "bf16")):
        seen = {}

        @cli.command("capture-bench", hidden=True)
        @bench_options
        def capture(**o):
            seen["config"] = config_from(o)

        result = CliRunner().invoke(cli, ["capture-bench", *args])
        cli.commands.pop("capture-bench")
        assert result.exit_code == 0, result.output
        assert seen["config"].precision == want and seen["config"].quant is None
    result = CliRunner().invoke(cli, ["train", "s1", "--out", str(tmp_path / "x"), "--precision", "fp16"])
    assert result.exit_code == 2 and "--precision" in result.output


# --- the time budget ---------------------------------------------------------------------------

def _slow_steps(monkeypatch, seconds):
    """Every forward of the stage-1 loss takes ``seconds`` more: a machine slower than the budget."""
    from lorag_harness.trainers import train as train_module

    real = train_module.value_ce

    def slow(*a, **k):
        time.sleep(seconds)
        return real(*a, **k)

    monkeypatch.setattr(train_module, "value_ce", slow)


def test_a_first_step_slower_than_the_budget_is_refused_before_training(tiny_model_dir, r8_small, tmp_path,
                                                                       monkeypatch):
    from lorag_harness.trainers.budget import BudgetTooSmall
    from lorag_harness.trainers.train import TrainConfig, train

    _slow_steps(monkeypatch, 0.6)
    cfg = TrainConfig(stage="s1", out=str(tmp_path / "s1"), base_model=tiny_model_dir, quant="none", batch_size=4,
                      max_doc_tokens=16, r=4, alpha=8, val_pairs=16, val_every=4, epochs=2, time_budget=1.0)
    steps = []
    with pytest.raises(BudgetTooSmall) as refused:
        train(cfg, r8_small, progress=lambda *a: steps.append(a))
    assert steps == []  # refused before the first step (and before the first validation)
    message = str(refused.value)
    assert "s per step" in message and "holds 0 steps" in message and "a useful run needs 8" in message
    assert "--time-budget" in message and "--batch-size" in message
    assert not (tmp_path / "s1" / "adapter_model.safetensors").exists()
    # on the command line: one line, exit 2, no "steps chosen"
    args = ["train", "s1", "--base-model", tiny_model_dir, "--out", str(tmp_path / "cli"), "--quant", "none",
            "--batch-size", "4", "--max-doc-tokens", "16", "--r", "4", "--alpha", "8", "--val-pairs", "16",
            "--val-every", "4", "--train-pairs", "40", "--time-budget", "1s"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "s per step" in result.output and "steps chosen" not in result.output
    assert not (tmp_path / "cli" / "adapter_model.safetensors").exists()


def test_the_plan_fits_the_budget_with_its_validations():
    from lorag_harness.trainers.budget import BudgetTooSmall, plan
    from lorag_harness.trainers.train import TrainConfig

    cfg = TrainConfig(stage="s1", val_every=10, time_budget=100.0)
    rate = {"train_s_per_token": 0.5 / 1000, "forward_s_per_token": 2.0 / 4000}  # 0.5 s a step, 2 s a validation
    # (100 s - 4 s measuring - the base model's and the last validation) / (0.5 s + 2 s / 10 per step)
    p = plan(cfg, 10_000, rate, 1000, 4000, 4.0, "fp32")
    assert p["steps"] == int((100 - 4 - 4) / 0.7) and p["useful"] == 20
    assert plan(cfg, 50, rate, 1000, 4000, 4.0, "fp32")["steps"] == 50  # never more than the epochs allow
    assert plan(cfg, 6, rate, 1000, 4000, 90.0, "fp32")["steps"] == 6  # a short epoch is useful as it is
    with pytest.raises(BudgetTooSmall, match=r"holds 11 steps .* 0\.5 s per step .* needs 20"):
        plan(cfg, 10_000, rate, 1000, 4000, 88.0, "fp32")
    # no validation slice: 20 steps are useful
    assert plan(TrainConfig(stage="s1", val_pairs=0, time_budget=30.0), 500, rate, 1000, 0, 0.0, "fp32")["steps"] == 60


def test_a_budget_with_a_maximum_grows_to_hold_its_minimum_steps_on_a_slow_machine():
    from lorag_harness.trainers.budget import BudgetTooSmall, plan
    from lorag_harness.trainers.train import TrainConfig

    rate = {"train_s_per_token": 0.5 / 1000, "forward_s_per_token": 2.0 / 4000}  # 0.5 s a step, 2 s a validation
    cfg = TrainConfig(stage="s1", val_every=10, time_budget=20.0, time_budget_max=60.0, min_steps=30)
    p = plan(cfg, 10_000, rate, 1000, 4000, 4.0, "fp32")  # 20 s holds 17 steps; 30 need 4 + 4 + 30 * 0.7 s
    assert p["steps"] == 30 and p["budget_s"] == 29 and p["grown_from"] == 20.0
    fast = plan(cfg, 10_000, {k: v / 4 for k, v in rate.items()}, 1000, 4000, 4.0, "fp32")
    assert fast["budget_s"] == 20.0 and fast["steps"] > 30 and "grown_from" not in fast  # a fast machine: as given
    # too slow even for the maximum: refused before training, naming the maximum and the rate
    slow = {k: v * 4 for k, v in rate.items()}
    with pytest.raises(BudgetTooSmall, match=r"grown to its maximum, 60 s\) holds 14 steps .* 2\.0 s per step .* needs 20"):
        plan(cfg, 10_000, slow, 1000, 4000, 4.0, "fp32")
    with pytest.raises(LoragError, match=r"--time-budget-max \(30 s\) must be at least the time budget \(60 s"):
        TrainConfig(stage="s1", time_budget=60.0, time_budget_max=30.0)


# --- the demo stops at a weak S1 ------------------------------------------------------------------

def test_demo_stops_at_a_weak_s1(tiny_model_dir, tmp_path, monkeypatch):
    from lorag_harness.trainers import profiles

    tiny = {"steps": 2, "batch_size": 4, "max_doc_tokens": 16, "r": 4, "alpha": 8}
    monkeypatch.setitem(profiles.PROFILES, "quick", {
        "s1": {**tiny, "val_pairs": 8, "val_every": 1, "lr": 1e-6}, "s2": tiny,
        "reranker": {"steps": 2, "batch_size": 4, "calibration_pairs": 8},
        "cls": {"steps": 2, "batch_size": 4, "max_doc_tokens": 16, "calibration_pairs": 8}})
    monkeypatch.setenv("LORAG_HEARTBEAT_SECONDS", "0.2")
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out-dir", str(out), "--base-model", tiny_model_dir,
                                      "--train-pairs", "24", "--eval-pairs", "8", "--time-budget", "10m"])
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "demo stopped after S1" in text and "weak adapter" in text and "steps/s" in text and "Fix:" in text
    s1 = json.loads((out / "adapters" / "s1" / "manifest.json").read_text())
    assert s1["weak"] is True and s1["hyperparameters"]["target_auc"] is None  # --time-budget given: kept to
    assert not (out / "adapters" / "s2").exists() and not (out / "models" / "reranker").exists()
    assert "train s2" not in text and not (out / "report.json").exists()
    assert "train s1:" in result.output  # the plain progress line off a terminal
    assert "Loading weights" not in result.output
    # --allow-weak goes on: S2 starts from the weak S1 (reused, not retrained) and is marked weak too
    args = ["demo", "--out-dir", str(out), "--base-model", tiny_model_dir, "--train-pairs", "24", "--eval-pairs", "8",
            "--time-budget", "10m", "--allow-weak", "--reranker-from", str(tmp_path / "no-such-model")]
    result = CliRunner().invoke(cli, args)
    text = " ".join(result.output.split())
    assert "is current, not retrained" in text and "weak adapter (--allow-weak)" in text, text
    assert json.loads((out / "adapters" / "s2" / "manifest.json").read_text())["weak"] is True


def test_demo_refused_by_the_budget_names_its_own_fixes_once(tiny_model_dir, tmp_path, monkeypatch):
    from lorag_harness.trainers.budget import BudgetTooSmall

    def refuse(cfg, dataset):
        assert cfg.target_auc == 0.9 and cfg.time_budget_max == 900  # the demo's S1: room to reach 0.9
        raise BudgetTooSmall("s1: the 120 s time budget holds 6 steps at 95.8 s per step; a useful run needs 40. "
                             "Fix: --precision fp32; a bigger --time-budget (at least 71m here); a smaller --batch-size", {})

    monkeypatch.setattr("lorag_harness.trainers.progress.train_with_progress", refuse)
    result = CliRunner().invoke(cli, ["demo", "--out-dir", str(tmp_path / "d"), "--base-model", tiny_model_dir,
                                      "--train-pairs", "24", "--eval-pairs", "8"])
    text = " ".join(result.output.split())
    assert result.exit_code == 3 and "holds 6 steps at 95.8 s per step" in text, text
    assert text.count("Fix:") == 1 and "--time-budget 10m" not in text and "lorag train s1" in text


# --- progress off a terminal ---------------------------------------------------------------------

def test_plain_progress_lines_off_a_terminal(monkeypatch):
    from rich.console import Console

    from lorag_harness.progress import progress

    monkeypatch.setenv("LORAG_HEARTBEAT_SECONDS", "0.1")
    buffer = io.StringIO()
    with progress(console=Console(file=buffer, force_terminal=False)) as p:
        bar = p.add_task("train s1", total=40, unit="step", phase="validating")
        for step in range(1, 4):
            time.sleep(0.15)
            p.update(bar, completed=step)
        time.sleep(0.15)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("train s1: step 0/40 (validating)")
    assert len(lines) >= 3 and any("step 3/40" in line and "ETA" in line and "steps/s" in line for line in lines)


def test_library_progress_bars_are_silenced_outside_debug():
    """Libraries' own tqdm bars (sentence-transformers' "Computing widget examples") stay out of a
    command's output; --debug keeps them."""
    import subprocess
    import sys

    code = ("import sys; from lorag_harness.progress import quiet_libraries; quiet_libraries(debug=sys.argv[1] == '1'); "
            "import tqdm; list(tqdm.tqdm(range(3), desc='Computing widget examples'))")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True, env=env, timeout=60)
    debug = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True, env=env, timeout=60)
    assert quiet.returncode == 0 and "Computing widget examples" not in quiet.stderr, quiet.stderr
    assert "Computing widget examples" in debug.stderr


def test_the_machine_record_names_isa_caps_and_the_decoding_precision(monkeypatch):
    for key in precision.ISA_LIMITS:
        monkeypatch.delenv(key, raising=False)
    plain_key = precision.machine_key()
    assert "isa_limits" not in precision.machine("fp32")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")  # an AVX2-only CPU emulated: another probe
    info = precision.machine("bf16", decode="fp32")
    assert info["isa_limits"] == {"MKL_ENABLE_INSTRUCTIONS": "AVX2"} and info["precision_decode"] == "fp32"
    assert "decoding fp32" in precision.describe(info) and "MKL_ENABLE_INSTRUCTIONS=AVX2" in precision.describe(info)
    mkl_key = precision.machine_key()
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the same value under another cap: another key
    assert len({plain_key, mkl_key, precision.machine_key()}) == 3


def test_the_machine_record_names_a_cgroup_cpu_quota_the_smallest_along_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(precision.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)  # 4 usable cores
    v1 = tmp_path / "v1"
    for folder, quota in ((v1 / "cpu", "-1"), (v1 / "cpu" / "ci", "300000"), (v1 / "cpu" / "ci" / "job", "130000")):
        folder.mkdir(parents=True)
        (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
        (folder / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("5:memory:/ci/job\n4:cpu:/ci/job\n")
    assert precision.cpu_quota(str(v1), str(proc)) == 1.3
    proc.write_text("4:cpu:/\n")  # the root: no limit
    assert precision.cpu_quota(str(v1), str(proc)) is None
    v2 = tmp_path / "v2"
    (v2 / "runner").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "runner" / "cpu.max").write_text("150000 100000\n")
    proc.write_text("0::/runner\n")
    assert precision.cpu_quota(str(v2), str(proc)) == 1.5
    assert precision.cpu_quota(str(v2), str(tmp_path / "missing")) is None
    (v2 / "runner" / "cpu.max").write_text("600000 100000\n")  # 6 CPUs of 4 usable cores: nothing limits it
    assert precision.cpu_quota(str(v2), str(proc)) is None
    monkeypatch.setattr(precision, "cpu_quota", lambda: 1.26)
    info = precision.machine("fp32")
    assert info["cpu_quota"] == 1.26 and "a CPU quota of 1.26" in precision.describe(info)


def test_a_cached_probe_without_the_decoding_shape_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.delenv(precision.PROBE_ENV, raising=False)
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "_probed", {})
    (tmp_path / precision.PROBE_FILE).write_text(json.dumps({precision.machine_key(): {"faster": "bf16", "ratio": 0.4}}))
    monkeypatch.setattr(precision, "measure", lambda *a, **k: {"fp32_s": 0.001, "bf16_s": 0.002, "ratio": 2.0,
                                                               "faster": "fp32"})
    assert precision.resolve("auto", "cpu", work="decode") == "fp32"
    assert json.loads((tmp_path / precision.PROBE_FILE).read_text())[precision.machine_key()]["decode"]["faster"] == "fp32"
