import json

import pytest
from click.testing import CliRunner

from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.cli.app import cli

SMALL = ["--eval-pairs", "8", "--train-pairs", "16", "--s2-pairs", "2", "--rag-queries", "10", "--rag-k", "5",
         "--corpus-size", "30", "--max-doc-tokens", "32"]


def test_bench_end_to_end_and_cache_reuse(tmp_path, tiny_model_dir):
    cache, out = tmp_path / "c.sqlite", tmp_path / "r.json"
    args = ["bench", "-g", "base,embedding", "--base-model", tiny_model_dir, *SMALL, "--cache", str(cache), "--out", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    for word in ("s1-relevance", "s2-reasoning", "rag-p5", "paired tests", "base", "embedding"):
        assert word in first.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"s1-relevance", "s2-reasoning", "rag-p5"}
    for task in report["results"].values():
        assert set(task) == {"base", "embedding"}
    assert len(report["results"]["s1-relevance"]["base"]["records"]) == 8
    assert len(report["results"]["rag-p5"]["base"]["records"]) == 10
    stored = JudgmentCache(cache).count()
    assert stored >= 8 + 50  # s1 pairs and the 10 x 5 retrieved pairs, per grader
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert JudgmentCache(cache).count() == stored  # everything reused
    again = json.loads(out.read_text())
    assert again["results"]["s1-relevance"] == report["results"]["s1-relevance"]
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--cache", str(cache)])
    assert f"removed {stored} judgments" in cleared.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "jsonl:nowhere.jsonl"], "nowhere.jsonl: file not found"),
        (["-g", "s1"], "grader s1 needs an adapter folder"),
        (["-g", "wizard"], "unknown grader 'wizard'"),
        (["-t", "s3"], "unknown task 's3'"),
        (["-d", "mnist"], "unknown dataset 'mnist'"),
    ],
)
def test_bench_bad_input_is_a_clean_error(args, message):
    result = CliRunner().invoke(cli, ["bench", "--no-cache", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "document": "d", "label": true}\n{"query": "q", "label": false}\n')
    result = CliRunner().invoke(cli, ["bench", "-g", "embedding", "--no-cache", "-d", f"jsonl:{path}"])
    assert result.exit_code == 2 and f"{path}:2: missing field 'document'" in result.output


def test_plugins_command_lists_everything():
    out = CliRunner().invoke(cli, ["plugins"]).output
    for name in ("base", "s1", "s2", "embedding", "s1-relevance", "rag-p5", "reuters-r8", "jsonl", "built-in"):
        assert name in out
