"""TREC runs in and out: --first-stage run:FILE reranks any retriever's run, --save-runs writes runs
that trec_eval-style tools score exactly as the report does."""
import json

import ir_measures
import numpy as np
import pytest
from beir_fixtures import write_beir
from click.testing import CliRunner
from test_ranking import judge_from, ranx_means

from lorag_harness.cli.app import cli
from lorag_harness.data.beir import load_beir
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment
from lorag_harness.tasks.rerank import Rerank
from lorag_harness.retrieval.trec_runs import read_run

METRICS = ("ndcg@10", "mrr@10", "map@100", "p@5", "recall@5")


def bench(*args):
    return CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", *args])


@pytest.mark.parametrize("text, message", [
    ("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0\n", "run.txt:2: expected 6 columns (query Q0 doc rank score tag), found 5"),
    ("q1 Q0 d1 one 2.0 x\n", "run.txt:1: rank 'one' is not an integer"),
    ("q1 Q0 d1 1 2.0 x\n\nq1 Q0 d2 2 high x\n", "run.txt:3: score 'high' is not a number"),
    ("q1 Q0 d1 1 nan x\n", "run.txt:1: score 'nan' is not a finite number"),
    ("q1 Q0 d1 1 2.0 x\nq2 Q0 d1 1 2.0 x\nq1 Q0 d1 2 1.0 x\n", "run.txt:3: document d1 appears twice for query q1 (first at line 1)"),
    ("\n\n", "the file has no run lines"),
])
def test_a_malformed_run_is_one_error_line_naming_file_and_line(tmp_path, monkeypatch, text, message):
    root = write_beir(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.txt").write_text(text, encoding="utf-8")
    result = bench("-d", f"beir:{root}", "--first-stage", "run:run.txt")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_first_stage_option_and_task_checks(tmp_path):
    root = write_beir(tmp_path / "c")
    (tmp_path / "r.txt").write_text("q1 Q0 d1 1 1 x\n", encoding="utf-8")
    bad = bench("-d", f"beir:{root}", "--first-stage", "splade")
    assert bad.exit_code == 2 and "'splade' is not bm25, dense or run:FILE" in bad.output
    ja = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank,judge-agreement", "-d", f"beir:{root}",
                                  "--first-stage", f"run:{tmp_path / 'r.txt'}"])
    assert ja.exit_code == 2 and "feeds the rerank task only, not judge-agreement" in ja.output
    missing = bench("-d", f"beir:{root}", "--first-stage", f"run:{tmp_path / 'nope.txt'}")
    assert missing.exit_code == 2 and "nope.txt: no such file" in missing.output
    no_rerank = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "s1-relevance", "-d", f"beir:{root}",
                                         "--save-runs", str(tmp_path / "runs")])
    assert no_rerank.exit_code == 2 and "only the rerank task makes runs" in no_rerank.output
    (tmp_path / "afile").write_text("x")
    as_file = bench("-d", f"beir:{root}", "--save-runs", str(tmp_path / "afile"))
    assert as_file.exit_code == 2 and "--save-runs" in as_file.output and "is a file" in as_file.output


def test_run_file_ties_missing_queries_and_unknown_documents_are_reported_with_lines(tmp_path):
    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0})
    run = tmp_path / "run.txt"
    run.write_text("\n".join([
        "q1 Q0 d2 1 9.0 other",   # 1
        "q1 Q0 d99 2 8.0 other",  # 2 unknown document
        "q1 Q0 d1 3 8.0 other",   # 3 tie with line 2's score, but d99 is dropped
        "q1 Q0 d3 4 7.0 other",   # 4
        "q2 Q0 d5 2 5.0 other",   # 5 tie with line 6: rank column decides (d4 first)
        "q2 Q0 d4 1 5.0 other",   # 6
        "q2 Q0 d6 3 1.0 other",   # 7
        "q9 Q0 d1 1 1.0 other",   # 8 query not in the dataset
        "q3 Q0 d8 1 3.0 other",   # 9
    ]) + "\n", encoding="utf-8")
    task = Rerank(k=5, first_stage=f"run:{run}")
    notes = task.check(ds)
    text = "\n".join(notes)
    assert "1 of 9 lines name documents not in the corpus, dropped (line 2)" in text
    assert "1 queries not in the dataset, ignored (first at line 8)" in text
    assert "no line for 1 of 4 evaluated queries (q4)" in text
    assert "1 score ties in the evaluated top 5 (lines 6 and 5)" in text
    cands, _ = task.candidates(ds)
    assert cands == {"q1": ["d2", "d1", "d3"], "q2": ["d4", "d5", "d6"], "q3": ["d8"], "q4": []}
    result = task.run(ds, judge_from(lambda q, d: Judgment(True, float(ds.qrels[q].get(d, 0)))))
    by_q = {r["query_id"]: r for r in result.records}
    assert by_q["q1"]["ranking"] == ["d1", "d2", "d3"] and by_q["q4"]["ndcg@10"] == 0.0
    assert result.metrics["first_stage_recall@5"].value == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    other = tmp_path / "other.txt"
    other.write_text("q1 Q0 x1 1 1.0 t\nq2 Q0 x2 1 1.0 t\n", encoding="utf-8")
    with pytest.raises(LoragError, match="none of its documents is in the corpus"):
        Rerank(first_stage=f"run:{other}").check(ds)
    assert read_run(run).ties == {"q1": [(3, 2)], "q2": [(5, 6)]}


def test_saved_runs_read_back_give_the_same_metrics_and_ranx_agrees(tmp_path):
    root = write_beir(tmp_path / "c")
    runs, first, second = tmp_path / "runs", tmp_path / "a.json", tmp_path / "b.json"
    one = bench("-d", f"beir:{root}", "--rerank-k", "5", "--out", str(first), "--save-runs", str(runs))
    assert one.exit_code == 0, one.output
    assert "runs written to" in one.output
    index = json.loads((runs / "runs.json").read_text())
    assert index["graders"] == {"embedding": "embedding.trec"} and index["first_stage"]["name"] == "bm25"
    two = bench("-d", f"beir:{root}", "--rerank-k", "5", "--out", str(second), "--first-stage",
                f"run:{runs / 'first-stage.trec'}")
    assert two.exit_code == 0, two.output
    a = json.loads(first.read_text())["results"]["rerank"]["embedding"]
    b = json.loads(second.read_text())["results"]["rerank"]["embedding"]
    for name, m in a["metrics"].items():
        if name != "first_stage_seconds":
            assert b["metrics"][name] == m, name
    assert [r["ranking"] for r in a["records"]] == [r["ranking"] for r in b["records"]]
    # the saved files, scored by ir-measures and by ranx, against the report
    qrels = list(ir_measures.read_trec_qrels(str(runs / "qrels.txt")))
    measures = {"ndcg@10": ir_measures.nDCG @ 10, "mrr@10": ir_measures.RR @ 10, "map@100": ir_measures.AP @ 100,
                "p@5": ir_measures.P @ 5, "recall@5": ir_measures.R @ 5}
    ranx_names = {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "map@100": "map@100", "p@5": "precision@5", "recall@5": "recall@5"}
    files = {"first-stage.trec": "first_stage_", "embedding.trec": ""}
    by_ranx = ranx_means(runs / "qrels.txt", [runs / file for file in files], list(ranx_names.values()))
    for (file, prefix), theirs in zip(files.items(), by_ranx):
        run = list(ir_measures.read_trec_run(str(runs / file)))
        agg = ir_measures.calc_aggregate(list(measures.values()), qrels, run)
        for name in METRICS:
            ours = a["metrics"][prefix + name]["value"]
            assert agg[measures[name]] == pytest.approx(ours, abs=1e-9), (file, name)
            assert theirs[ranx_names[name]] == pytest.approx(ours, abs=1e-9), (file, name)
    assert np.isfinite(a["metrics"]["ndcg@10"]["value"])
