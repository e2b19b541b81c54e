import json

import pytest

from lorag_harness import Judgment, hookimpl
from lorag_harness.export import write_report
from lorag_harness.plugins import make_manager
from lorag_harness.runner import BenchConfig, BenchResult, run_bench


class Always:
    name = "always"

    def grade(self, pairs, reasons=False, advance=None):
        reason = {"query_topic": "x", "document_topic": "y", "summary": "z"} if reasons else None
        return [Judgment(True, 0.9, reason, raw_text='{"relevant": true}') for _ in pairs]


@pytest.fixture(scope="module")
def result():
    class P:
        @hookimpl
        def register_graders(self, register):
            register("always", lambda arg, ctx: Always())

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    cfg = BenchConfig(graders=["always", "embedding"], tasks=["s1-relevance", "s2-reasoning", "rag-p5"],
                      dataset_options={"n_train": 40, "n_eval": 30, "corpus_size": 60, "n_queries": 10},
                      task_options={"s2-reasoning": {"limit": 6}, "rag-p5": {"k": 10}}, cache_path=":memory:")
    return run_bench(cfg, pm)


def test_json_round_trip(result, tmp_path):
    path = write_report(result, tmp_path / "r.json")
    back = BenchResult.from_dict(json.loads(path.read_text()))
    assert back.results["s1-relevance"]["always"].metrics["recall"].value == 1.0
    assert back.comparisons == json.loads(json.dumps(result.comparisons))


def test_markdown(result, tmp_path):
    text = write_report(result, tmp_path / "r.md").read_text()
    assert "## s1-relevance" in text and "| always | 0.500 (" in text
    assert "## Paired tests" in text and "mcnemar-exact" in text and "paired-bootstrap" in text


def test_html_has_tables_charts_and_disagreements(result, tmp_path):
    text = write_report(result, tmp_path / "r.html").read_text()
    assert text.startswith("<!doctype html>") and text.count("<h2>") >= 7
    assert text.count('<img alt="chart" src="data:image/png;base64,') == 3  # confusion, reliability, P@k
    n = sum(1 for a, b in zip(result.results["s1-relevance"]["always"].records,
                              result.results["s1-relevance"]["embedding"].records) if a["relevant"] != b["relevant"])
    assert f"Disagreements (s1-relevance): {n} pairs" in text and n > 0
    assert "&lt;" not in result.dataset and "<script" not in text
