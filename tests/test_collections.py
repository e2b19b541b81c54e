"""Collections by name, offline: irds:ID from files under IR_DATASETS_HOME, hf:NAME from a local
folder in the hub's BEIR layout; the BEIR reader skips empty documents with a counted note."""
import json
import os
import subprocess
import sys
import zipfile

import pytest
from beir_fixtures import DOCS, QRELS, QUERIES, write_beir
from click.testing import CliRunner

from lorag_harness.cli.app import cli
from lorag_harness.data.beir import load_beir
from lorag_harness.evaluation.runner import load_dataset

pytest.importorskip("ir_datasets")
pytest.importorskip("datasets")

TRAIN = [("q5", "d9", 1)]
EMPTY = {"d13": ("", ""), **DOCS}  # a document with neither title nor text, first in the file


def _rows(docs):
    return "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in docs.items())


def _lorag(args, env, cwd):
    done = subprocess.run([sys.executable, "-m", "lorag_harness", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.integration  # ir_datasets builds its docstore
def test_irds_reads_a_beir_collection_from_ir_datasets_home(tmp_path, tiny_model_dir):
    # a grader that does not calibrate: one judged training pair is too few to fit one (and is refused)
    home = tmp_path / "irds"
    (home / "beir" / "scifact").mkdir(parents=True)
    with zipfile.ZipFile(home / "beir" / "scifact" / "source.zip", "w") as z:  # where ir_datasets keeps the download
        z.writestr("scifact/corpus.jsonl", _rows(EMPTY))
        z.writestr("scifact/queries.jsonl", "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
        for split, rows in (("test", QRELS), ("train", TRAIN)):
            z.writestr(f"scifact/qrels/{split}.tsv", "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows))
    env = {"IR_DATASETS_HOME": str(home), "LORAG_CACHE_DIR": str(tmp_path / "cache")}
    code, out = _lorag(["bench", "--no-cache", "-d", "irds:beir/scifact/test", "-t", "rerank", "-g", "base",
                        "--base-model", tiny_model_dir,
                        "--rerank-k", "5", "--out", "irds.json"], env, tmp_path)
    assert code == 0, out
    assert "1 documents with neither title nor text skipped (line 1)" in " ".join(out.split())
    got = json.loads((tmp_path / "irds.json").read_text())
    assert got["dataset"] == "irds:beir/scifact/test"
    # the same files read as beir:DIR give the same figures
    root = write_beir(tmp_path / "direct", qrels={"test": QRELS, "train": TRAIN}, splits=("test", "train"))
    direct = CliRunner().invoke(cli, ["bench", "--no-cache", "-d", f"beir:{root}", "-t", "rerank", "-g", "base",
                                      "--base-model", tiny_model_dir,
                                      "--rerank-k", "5", "--out", str(tmp_path / "beir.json")])
    assert direct.exit_code == 0, direct.output
    want = json.loads((tmp_path / "beir.json").read_text())
    assert got["dataset_fingerprint"] == want["dataset_fingerprint"]
    for name, m in want["results"]["rerank"]["base"]["metrics"].items():
        if not name.endswith("seconds"):
            assert got["results"]["rerank"]["base"]["metrics"][name]["value"] == m["value"], name
    written = tmp_path / "cache" / "collections" / "irds" / "beir__scifact__test"
    assert json.loads((written / "source.json").read_text())["irds"] == "beir/scifact/test"
    assert (written / "qrels" / "train.tsv").is_file()  # training queries from beir/scifact/train
    code, out = _lorag(["bench", "--no-cache", "-d", "irds:beir/no-such-thing/test", "-t", "rerank", "-g", "embedding"],
                       env, tmp_path)
    assert code == 2 and "not an ir_datasets id" in out and len(out.strip().splitlines()) == 1, out


def _hf_folder(root):
    root.mkdir()
    (root / "corpus.jsonl").write_text(_rows(EMPTY), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()),
                                        encoding="utf-8")
    (root / "qrels").mkdir()
    for split, rows in (("test", QRELS), ("train", TRAIN)):
        (root / "qrels" / f"{split}.jsonl").write_text(
            "".join(json.dumps({"query-id": q, "corpus-id": d, "score": s}) + "\n" for q, d, s in rows), encoding="utf-8")
    # the mteb layout on the hub: three configs declared in the dataset card
    (root / "README.md").write_text("""---
configs:
- config_name: corpus
  data_files:
  - split: corpus
    path: corpus.jsonl
- config_name: queries
  data_files:
  - split: queries
    path: queries.jsonl
- config_name: default
  data_files:
  - split: test
    path: qrels/test.jsonl
  - split: train
    path: qrels/train.jsonl
---
""", encoding="utf-8")
    return root


def test_hf_reads_a_beir_style_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder = _hf_folder(tmp_path / "scifact-like")
    ds = load_dataset(f"hf:{folder}", {"seed": 3})
    want = load_beir(str(write_beir(tmp_path / "direct", qrels={"test": QRELS, "train": TRAIN}, splits=("test", "train"))),
                     {"seed": 3})
    assert ds.name == f"hf:{folder}/test" and ds.train_source == "qrels/train.tsv"
    assert ds.fingerprint() == want.fingerprint()
    assert ds.qrels == want.qrels and [d.doc_id for d in ds.corpus] == [d.doc_id for d in want.corpus]
    assert any("1 documents with neither title nor text skipped (line 1)" in n for n in ds.notes)
    with pytest.raises(Exception, match="no qrels split 'dev'"):
        load_dataset(f"hf:{folder}", {"split": "dev"})


def test_an_unreachable_hub_is_one_line_naming_the_offline_path(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "LORAG_CACHE_DIR": str(tmp_path / "cache")}
    code, out = _lorag(["bench", "--no-cache", "-d", "hf:BeIR/scifact", "-t", "rerank", "-g", "embedding"], env, tmp_path)
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1, out
    assert "hf:BeIR/scifact: could not load it from the Hugging Face hub" in out and "use beir:DIR" in out


def test_beir_reader_skips_documents_without_title_or_text(tmp_path):
    root = write_beir(tmp_path / "c", docs={**DOCS, "d13": ("", ""), "d14": ("  ", None)},
                      qrels=[*QRELS, ("q1", "d13", 1)])
    ds = load_beir(str(root), {"train_fraction": 0})
    assert "d13" not in {d.doc_id for d in ds.corpus} and len(ds.corpus) == len(DOCS)
    assert "d13" not in ds.qrels["q1"]
    assert ds.notes[0] == (f"{root / 'corpus.jsonl'}: 2 documents with neither title nor text skipped (lines 13, 14); "
                           "their 1 judgments left out")
