import json
import subprocess
import sys

import pytest
from beir_fixtures import write_beir
from rich.console import Console

from lorag_harness import Judgment, hookimpl
from lorag_harness.reports.files import markdown, write_report
from lorag_harness.plugins import make_manager
from lorag_harness.reports.terminal import print_report
from lorag_harness.reports.common import Row, best
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.runner import BenchConfig, BenchResult, run_bench
from lorag_harness.evaluation.stats import Metric


class Always:
    name = "always"

    def grade(self, pairs, reasons=False, advance=None):
        reason = {"query_topic": "x", "document_topic": "y", "summary": "z"} if reasons else None
        return [Judgment(True, 0.9, reason, raw_text='{"relevant": true}') for _ in pairs]


def manager():
    class P:
        @hookimpl
        def register_graders(self, register):
            register("always", lambda arg, ctx: Always())

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    return pm


@pytest.fixture(scope="module")
def result():
    cfg = BenchConfig(graders=["always", "embedding"], tasks=["s1-relevance", "s2-reasoning", "rag-p5"],
                      dataset_options={"n_train": 40, "n_eval": 30, "corpus_size": 60, "n_queries": 10},
                      task_options={"s2-reasoning": {"limit": 6}, "rag-p5": {"k": 10}}, cache_path=":memory:")
    return run_bench(cfg, manager())


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    root = write_beir(tmp_path_factory.mktemp("beir") / "tiny")
    cfg = BenchConfig(graders=["always", "embedding"], tasks=["rerank", "judge-agreement"], dataset=f"beir:{root}",
                      dataset_options={"train_fraction": 0.25}, task_options={"rerank": {"k": 5}, "judge-agreement": {"k": 10}},
                      cache_path=":memory:")
    return run_bench(cfg, manager())


def test_json_round_trip(result, tmp_path):
    path = write_report(result, tmp_path / "r.json")
    back = BenchResult.from_dict(json.loads(path.read_text()))
    assert back.results["s1-relevance"]["always"].metrics["recall"].value == 1.0
    assert back.results["s1-relevance"]["always"].metrics["parse_failures"].better == "lower"
    assert back.results["rag-p5"]["always"].metrics["kept_per_query"].better is None
    assert back.comparisons == json.loads(json.dumps(result.comparisons))


def test_reports_written_before_metric_directions_still_load(result, tmp_path):
    old = json.loads(json.dumps(result.to_dict()))
    for task in old["results"].values():
        for r in task.values():
            for m in r["metrics"].values():
                del m["better"]
    back = BenchResult.from_dict(old)
    metrics = back.results["s1-relevance"]["embedding"].metrics
    assert metrics["parse_failures"].better == "lower" and metrics["accuracy"].better == "higher"
    assert "## s1-relevance" in markdown(back)


def test_best_follows_each_metrics_direction():
    rows = [Row("a", {"x": Metric(0.2), "err": Metric(3, better="lower"), "n": Metric(5, better=None)}, None),
            Row("b", {"x": Metric(0.4), "err": Metric(1, better="lower"), "n": Metric(9, better=None)}, None)]
    assert (best(rows, "x"), best(rows, "err"), best(rows, "n")) == ("b", "b", None)
    with pytest.raises(ValueError, match="better"):
        Metric(1.0, better="up")


def test_markdown(result, tmp_path):
    text = write_report(result, tmp_path / "r.md").read_text()
    assert "## s1-relevance" in text and "| always | 0.500 (" in text
    assert "## Paired tests" in text and "mcnemar-exact" in text and "paired-bootstrap" in text


def test_html_has_tables_charts_and_disagreements(result, tmp_path):
    text = write_report(result, tmp_path / "r.html").read_text()
    assert text.startswith("<!doctype html>") and text.count("<h2>") == 4  # three tasks, paired tests
    assert text.count('<img alt="chart" src="data:image/png;base64,') == 3  # confusion, reliability, P@k
    for title in ("Confusion matrices", "Reliability", "P@k (rag-p5)"):
        assert f"<h3>{title}</h3><img" in text
    n = sum(1 for a, b in zip(result.results["s1-relevance"]["always"].records,
                              result.results["s1-relevance"]["embedding"].records) if a["relevant"] != b["relevant"])
    assert f"Disagreements (s1-relevance): {n} pairs" in text and n > 0
    assert "<script" not in text


def test_ranking_reports_show_the_first_stage_plots_and_tests(ranked, tmp_path):
    rerank = ranked.results["rerank"]
    assert set(rerank) == {"always", "embedding"}
    console = Console(record=True, width=250)
    print_report(ranked, console)
    terminal = console.export_text()
    md = write_report(ranked, tmp_path / "r.md").read_text()
    html = write_report(ranked, tmp_path / "r.html").read_text()
    first = rerank["always"].metrics["first_stage_ndcg@10"].value
    for text in (terminal, md):
        assert "bm25@5 (first stage)" in text and "first_stage_ndcg@10" not in text
        assert "paired-randomization" in text and "kendall-tau" in text
    assert f"| bm25@5 (first stage) | {first:.3f}" in md
    # "always" keeps the first-stage order, so its nDCG@10 is the first stage's
    assert rerank["always"].metrics["ndcg@10"].value == pytest.approx(first)
    assert "<h3>Per-query nDCG@10</h3><img" in html and "<h3>Grader vs human labels</h3><img" in html
    assert "bm25@5 (first stage)" in html and "τ" in html
    tau = [c for c in ranked.comparisons["judge-agreement"] if c["test"] == "kendall-tau"]
    assert {c["a"] for c in tau} == {"always", "embedding"} and all(c["n_systems"] == 4 for c in tau)


def test_html_report_does_not_import_export():
    code = "import sys, lorag_harness.reports.html; print('lorag_harness.reports.files' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-1000:]


def test_a_task_without_report_hooks_gets_one_row_per_grader(result):
    r = BenchResult("d", "f", ["g"], ["third-party"], {"third-party": {"g": TaskResult({"m": Metric(0.5)})}}, {},
                    {"g": {"third-party": 1.0}})
    assert "| g | 0.500 | 1.0 |" in markdown(r)


def test_best_marks_need_a_direction_a_single_winner_and_a_recall_earned_above_chance():
    from lorag_harness.reports.common import Row, best
    from lorag_harness.evaluation.stats import Metric

    def row(label, precision, recall, acc):
        return Row(label, {"precision": Metric(precision), "recall": Metric(recall), "accuracy": Metric(acc),
                           "positive_rate": Metric(0.3, better=None), "parse_failures": Metric(0, better="lower")}, None)

    rows = [row("always-yes", 0.3, 1.0, 0.3), row("good", 0.8, 0.7, 0.85), row("meh", 0.5, 0.6, 0.7)]
    assert best(rows, "recall") is None  # won by precision == prevalence
    assert best(rows, "positive_rate") is None and best(rows, "parse_failures") is None  # no direction; a tie
    assert best(rows, "accuracy") == "good" and best(rows, "precision") == "good"
    assert best(rows[1:], "recall") == "good"  # earned: precision above the prevalence
