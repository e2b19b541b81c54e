"""lorag report: re-render saved results without re-running; --compare two results files."""
import json
import re

import pytest
from beir_fixtures import write_beir
from click.testing import CliRunner

from lorag_harness.cli.app import cli
from lorag_harness.evaluation.stats import mcnemar_exact, paired_randomization
from lorag_harness.tasks.s1_relevance import delong


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_model_dir):
    """The same collection, tasks and cache: A graded by embedding, B by the prompted tiny LM."""
    tmp = tmp_path_factory.mktemp("runs")
    root = write_beir(tmp / "c")
    cache = tmp / "cache.sqlite"
    common = ["bench", "-t", "s1-relevance,rerank", "-d", f"beir:{root}", "--rerank-k", "5", "--cache", str(cache),
              "--base-model", tiny_model_dir, "--max-doc-tokens", "32"]
    for grader, name in (("embedding", "a.json"), ("base", "b.json"), ("embedding", "a.md")):
        done = invoke(*common, "-g", grader, "--out", str(tmp / name))
        assert done.exit_code == 0, done.output
    return tmp


def _without_seconds(md: str) -> str:
    return re.sub(r"\| [0-9.]* \|$", "| |", md, flags=re.M)


def test_report_rerenders_without_rerunning(two_runs, tmp_path):
    a = two_runs / "a.json"
    md, page = tmp_path / "again.md", tmp_path / "again.html"
    done = invoke("report", str(a), "--out", str(md))
    assert done.exit_code == 0, done.output
    assert "s1-relevance" in done.output and "bm25@5 (first stage)" in done.output
    # the same tables as the bench wrote from the same (cached) judgments; only wall times differ
    assert _without_seconds(md.read_text()) == _without_seconds((two_runs / "a.md").read_text())
    assert invoke("report", str(a), "--out", str(page)).exit_code == 0
    text = page.read_text()
    stored = json.loads(a.read_text())["results"]["rerank"]["embedding"]["metrics"]
    assert f"{stored['ndcg@10']['value']:.3f}" in text and "<img" in text
    runs = invoke("report", str(a), "--save-runs", str(tmp_path / "runs"))
    assert runs.exit_code == 0 and (tmp_path / "runs" / "embedding.trec").is_file()


def test_compare_two_bench_runs_metric_by_metric_with_paired_tests(two_runs, tmp_path):
    a, b = two_runs / "a.json", two_runs / "b.json"
    out = tmp_path / "cmp.json"
    done = invoke("report", "--compare", str(a), str(b), "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "embedding → base" in done.output
    comp = json.loads(out.read_text())
    rows = {(r["task"], r["metric"]): r for r in comp["rows"]}
    ra, rb = (json.loads(p.read_text())["results"] for p in (a, b))
    for (task, metric), r in rows.items():
        va, vb = ra[task]["embedding"]["metrics"][metric]["value"], rb[task]["base"]["metrics"][metric]["value"]
        assert r["a"]["value"] == va and r["b"]["value"] == vb
        if va is not None and vb is not None:
            assert r["delta"] == pytest.approx(vb - va)
    s1a, s1b = ra["s1-relevance"]["embedding"]["paired"], rb["s1-relevance"]["base"]["paired"]
    want = mcnemar_exact(s1b["correct"], s1a["correct"])
    assert rows["s1-relevance", "accuracy"]["test"]["p_value"] == want["p_value"]
    assert rows["s1-relevance", "roc_auc"]["test"]["p_value"] == delong(s1a["label"], s1b["score"], s1a["score"])["p_value"]
    rra, rrb = ra["rerank"]["embedding"]["paired"], rb["rerank"]["base"]["paired"]
    got = rows["rerank", "ndcg@10"]["test"]
    assert got["test"] == "paired-randomization"
    assert got["p_value"] == paired_randomization(rrb["ndcg@10"], rra["ndcg@10"])["p_value"]
    assert rows["rerank", "map@100"]["test"] is None  # no per-query data stored for it
    md = invoke("report", "--compare", str(a), str(b), "--out", str(tmp_path / "cmp.md"))
    assert md.exit_code == 0 and "| rerank | embedding → base | ndcg@10 |" in (tmp_path / "cmp.md").read_text()


def test_compare_pytest_baselines(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, acc in ((old, 0.80), (new, 0.70)):
        folder.mkdir()
        (folder / "tests__t.py__test_a.json").write_text(json.dumps({"test": "tests/t.py::test_a", "metrics": {
            "accuracy": {"value": acc, "low": acc - 0.05, "high": acc + 0.05, "n": 100, "better": "higher"},
            "parse_failures": {"value": 3, "low": None, "high": None, "n": 100, "better": "lower"}}}))
    (new / "tests__t.py__test_b.json").write_text(json.dumps({"test": "tests/t.py::test_b", "metrics": {
        "p@5": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 8, "better": "higher"}}}))
    out = tmp_path / "cmp.json"
    done = invoke("report", "--compare", str(old), str(new), "--out", str(out))
    assert done.exit_code == 0, done.output
    comp = json.loads(out.read_text())
    acc = next(r for r in comp["rows"] if r["metric"] == "accuracy")
    assert acc["delta"] == pytest.approx(-0.10) and acc["change"] == "worse" and acc["test"] is None
    assert any("new only: tests/t.py::test_b" in n for n in comp["notes"])
    assert any("no paired test (no per-unit data)" in n for n in comp["notes"])
    one = invoke("report", "--compare", str(old / "tests__t.py__test_a.json"), str(new / "tests__t.py__test_a.json"))
    assert one.exit_code == 0 and "worse" in one.output


@pytest.mark.parametrize("content, message", [
    ('{"results": {}\n,,', "bad.json:2: invalid JSON"),
    ('[1, 2]', "bad.json: expected a JSON object, found list"),
    ('{"training": {}}', "bad.json: not a lorag results file (no 'results'"),
])
def test_report_refuses_a_file_that_is_not_results_in_one_line(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text(content)
    done = invoke("report", "bad.json")
    assert done.exit_code == 2 and message in done.output and len(done.output.strip().splitlines()) == 1, done.output


def test_report_arguments(tmp_path):
    assert "give RESULTS.json, or --compare" in invoke("report").output
    assert "no such file" in invoke("report", str(tmp_path / "nope.json")).output
    (tmp_path / "r.json").write_text('{"metrics": {"accuracy": {"value": 0.5}}}')
    bad = invoke("report", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.txt"))
    assert bad.exit_code == 2 and "cannot tell the format from the suffix .txt" in bad.output
