"""Trainers and `lorag merge` never write over another model, another run or files lorag did not write
(without --force), check --out before any work, and leave no empty --out behind when refused."""
import hashlib
import json

import pytest
from click.testing import CliRunner

from lorag_harness.cli.app import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def fake_model(folder, manifest, files=("adapter_model.safetensors",)):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for name in files:
        (folder / name).write_bytes(b"weights of another model")
    return folder


S1 = {"stage": "s1", "key": "0123456789abcdef", "base_model": "x"}  # an S1 adapter's manifest (no "kind" yet)


def reranker_args(tiny_bert, out, *extra):
    return ["train", "reranker", "--from", tiny_bert, "--out", out, "--train-pairs", "40", "--steps", "2",
            "--batch-size", "8", "--calibration-pairs", "40", *extra]


def cls_args(base, out, *extra):
    return ["train", "cls", "--base-model", base, "--out", out, "--train-pairs", "40", "--steps", "2",
            "--batch-size", "8", "--calibration-pairs", "16", *extra]


def s1_args(base, out, *extra):
    return ["train", "s1", "--base-model", base, "--out", out, "--quant", "none", "--steps", "2", "--batch-size", "4",
            "--max-doc-tokens", "16", "--r", "4", "--alpha", "8", "--val-pairs", "0", "--calibration-pairs", "0",
            "--train-pairs", "24", "--allow-weak", *extra]


def test_cls_over_a_reranker_is_refused_and_the_reranker_still_loads(tiny_bert, tiny_model_dir, tmp_path):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    rr = tmp_path / "rr"
    assert run(*reranker_args(tiny_bert, rr)).exit_code == 0
    before = snapshot(rr)
    result = run(*cls_args(tiny_model_dir, rr))
    assert result.exit_code == 2, result.output
    assert "holds a cross-encoder reranker" in result.output and "--force" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert snapshot(rr) == before
    CrossEncoderGrader(str(rr))  # reproduces its probe: untouched


def test_reranker_over_an_s1_adapter_is_refused(tiny_bert, tmp_path):
    ad = fake_model(tmp_path / "s1", S1)
    before = snapshot(ad)
    result = run(*reranker_args(tiny_bert, ad))
    assert result.exit_code == 2 and "holds an S1 adapter" in result.output, result.output
    assert snapshot(ad) == before


def test_s1_over_foreign_files_and_s2_over_its_own_s1_are_refused(tiny_model_dir, tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("months of work")
    result = run(*s1_args(tiny_model_dir, mine))
    assert result.exit_code == 2 and "files lorag did not write (chapter1.tex)" in result.output, result.output
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]
    ad = fake_model(tmp_path / "s1", S1)
    result = run("train", "s2", "--from", ad, *s1_args(tiny_model_dir, ad)[2:])
    assert result.exit_code == 2 and "holds an S1 adapter (lorag train s1), not an S2 adapter" in result.output, result.output


def test_merge_over_another_model_is_refused_before_loading(tmp_path):
    ad = fake_model(tmp_path / "s1", S1)
    other = fake_model(tmp_path / "rr", {"kind": "cross-encoder", "key": "k"}, ("model.safetensors",))
    before = snapshot(other)
    # the adapter is fake: loading it would fail with another message; the refusal comes first
    result = run("merge", ad, "--out", other)
    assert result.exit_code == 2 and "holds a cross-encoder reranker (lorag train reranker), not a merged model" in result.output, result.output
    assert snapshot(other) == before
    result = run("merge", ad, "--out", ad)
    assert result.exit_code == 2 and "holds an S1 adapter" in result.output, result.output


def test_same_kind_from_another_run_needs_force(tiny_bert, tmp_path):
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    rr = tmp_path / "rr"
    assert run(*reranker_args(tiny_bert, rr)).exit_code == 0
    first = json.loads((rr / "manifest.json").read_text())
    assert run(*reranker_args(tiny_bert, rr)).exit_code == 0  # the same run again: allowed
    result = run(*reranker_args(tiny_bert, rr, "--lr", "5e-4"))
    assert result.exit_code == 2 and "from another run" in result.output, result.output
    assert json.loads((rr / "manifest.json").read_text())["key"] == first["key"]
    result = run(*reranker_args(tiny_bert, rr, "--lr", "5e-4", "--force"))
    assert result.exit_code == 0, result.output
    assert json.loads((rr / "manifest.json").read_text())["key"] != first["key"]
    CrossEncoderGrader(str(rr))


def test_force_replaces_another_kind(tiny_bert, tmp_path):
    ad = fake_model(tmp_path / "s1", S1)
    result = run(*reranker_args(tiny_bert, ad, "--force"))
    assert result.exit_code == 0, result.output
    assert json.loads((ad / "manifest.json").read_text())["kind"] == "cross-encoder"


@pytest.mark.parametrize("trainer", ["reranker", "cls", "s1"])
def test_a_refused_run_leaves_no_empty_out_behind(trainer, tiny_bert, tiny_model_dir, tmp_path):
    out = tmp_path / "new" / "model"
    args = {"reranker": reranker_args(tiny_bert, out), "cls": cls_args(tiny_model_dir, out),
            "s1": s1_args(tiny_model_dir, out)}[trainer]
    result = run(*args, "-d", f"jsonl:{tmp_path / 'missing.jsonl'}")
    assert result.exit_code == 2 and "missing.jsonl" in result.output, result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("how", ["file", "under a file"])
def test_train_s1_checks_out_before_the_data_and_the_model(how, tiny_model_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if how == "file" else blocker / "adapter"
    # the dataset does not exist either: --out is named first, before anything loads
    result = run(*s1_args(tiny_model_dir, out), "-d", f"jsonl:{tmp_path / 'missing.jsonl'}")
    assert result.exit_code == 2, result.output
    assert f"--out {out}" in result.output and "missing.jsonl" not in result.output
    assert blocker.read_text() == "not a folder"


def test_demo_refuses_other_files_in_its_folders_before_work(tmp_path):
    mine = tmp_path / "runs" / "models" / "reranker"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    result = run("demo", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "holds files lorag did not write (notes.txt)" in result.output, result.output
    assert "move it away, or choose another --out-dir" in result.output and "--force" not in result.output
    (tmp_path / "runs" / "report.json").write_text('{"mine": 1}')
    result = run("demo", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "report.json: exists and is not a lorag report" in result.output, result.output
    assert (mine / "notes.txt").read_text() == "mine" and (tmp_path / "runs" / "report.json").read_text() == '{"mine": 1}'
