"""lorag demo's pieces that need no training: merging its bench runs into one report, the warm-up."""
from types import SimpleNamespace

from lorag_harness.evaluation.runner import BenchResult
from lorag_harness.trainers.demo import merge_results
from lorag_harness.trainers.train import Schedule


def test_merge_keeps_a_grader_run_twice_and_what_a_later_run_said(monkeypatch):
    # the demo grades base in two runs (relevance and RAG; reasons): one row, both runs' timings
    monkeypatch.setattr("lorag_harness.evaluation.runner.build_task",
                        lambda task, options, pm=None: SimpleNamespace(compare=lambda results: [sorted(results)]))
    first = BenchResult("r8", "fp", ["base", "s1"], ["rel", "rag"], {"rel": {"base": 1, "s1": 2}, "rag": {"base": 3, "s1": 4}},
                        {}, {"base": {"rel": 1.0, "rag": 2.0}, "s1": {"rel": 1.5, "rag": 2.5}},
                        config={"graders": ["base", "s1"], "tasks": ["rel", "rag"]})
    later = BenchResult("r8", "fp", ["base", "s2"], ["why"], {"why": {"base": 5, "s2": 6}}, {},
                        {"base": {"why": 3.0}, "s2": {"why": 4.0}}, alerts=["s2 ranks worse than random"],
                        partial={"error": "E", "grader": "s2", "task": "why", "missing": ["s2 · why"]})
    merged = merge_results([first, later], ["rel", "why", "rag"])
    assert merged.graders == ["base", "s1", "s2"] and merged.tasks == ["rel", "why", "rag"]
    assert list(merged.results) == ["rel", "why", "rag"] and merged.results["why"] == {"base": 5, "s2": 6}
    assert merged.timings["base"] == {"rel": 1.0, "rag": 2.0, "why": 3.0}
    assert merged.alerts == ["s2 ranks worse than random"] and merged.partial["missing"] == ["s2 · why"]
    assert merged.config["graders"] == merged.graders and merged.config["tasks"] == merged.tasks
    assert merged.comparisons == {"rel": [["base", "s1"]], "why": [["base", "s2"]], "rag": [["base", "s1"]]}


def test_warm_up_holds_its_minimum_steps_within_a_quarter_of_the_run():
    def warm_up(schedule):  # steps before the full rate
        return next(step for step in range(schedule.total) if schedule(step) >= 1.0)

    assert warm_up(Schedule(40, 0.1, "constant", 10)) == 10  # 10% would be 4 steps
    assert warm_up(Schedule(400, 0.1, "constant", 10)) == 40  # 10% is more
    assert warm_up(Schedule(20, 0.1, "constant", 10)) == 5  # at most a quarter of a short run
    assert warm_up(Schedule(40, 0.1, "constant")) == 4
