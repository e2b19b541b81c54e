import json

import sentence_transformers  # noqa: F401  kept loaded: in-process pytester runs would import it twice

from lorag_harness.pytest_plugin import baseline_filename

pytest_plugins = ["pytester"]

CONFTEST = '''
from lorag_harness import Grader, Judgment, hookimpl
from lorag_harness.plugins import pm


class AlwaysRelevant(Grader):
    name = "always"

    def grade(self, pairs, *, reasons=False, advance=None):
        return [Judgment(True, 1.0) for _ in pairs]


class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("always", lambda arg, context: AlwaysRelevant())


if not pm.has_plugin("test-always"):
    pm.register(Plugin(), name="test-always")
'''

TEST = '''
import pytest

@pytest.mark.lorag(grader="{grader}", task="s1-relevance", dataset="reuters-r8", n_eval=60, n_train=60)
def test_s1_no_regression(lorag, lorag_baseline):
    lorag_baseline(lorag.result)
'''

# a result built by hand: baseline rules without running a grader
FIXED = '''
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.stats import Metric

def test_same_name(lorag_baseline):
    lorag_baseline(TaskResult({{"f1": Metric({f1}, {f1} - 0.05, {f1} + 0.05)}}))
'''


def test_baseline_written_passes_then_catches_a_worse_grader(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_reg=TEST.format(grader="embedding"))
    missing = pytester.runpytest("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no lorag baseline*--lorag-update-baselines*"])

    pytester.runpytest("--lorag-update-baselines").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "lorag_baselines" / "test_reg.py__test_s1_no_regression.json").read_text())
    assert stored["test"] == "test_reg.py::test_s1_no_regression"
    assert stored["metrics"]["accuracy"]["value"] > 0.7 and stored["metrics"]["accuracy"]["low"] is not None

    pytester.runpytest().assert_outcomes(passed=1)  # same grader: within its interval

    pytester.makepyfile(test_reg=TEST.format(grader="always"))
    worse = pytester.runpytest()
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*lorag regression against*", "*accuracy: stored 0.* → now 0.5; allowed ≥ 0.*"])


def test_same_test_name_in_two_files_keeps_two_baselines(pytester):
    pytester.makepyfile(**{"a/test_one": FIXED.format(f1=0.8), "b/test_one": FIXED.format(f1=0.6),
                           "a/__init__": "", "b/__init__": ""})
    pytester.runpytest("--lorag-update-baselines", "a").assert_outcomes(passed=1)
    pytester.runpytest("--lorag-update-baselines", "b").assert_outcomes(passed=1)
    folder = pytester.path / "lorag_baselines"
    assert sorted(p.name for p in folder.iterdir()) == ["a__test_one.py__test_same_name.json",
                                                          "b__test_one.py__test_same_name.json"]
    assert json.loads((folder / "a__test_one.py__test_same_name.json").read_text())["metrics"]["f1"]["value"] == 0.8
    pytester.runpytest().assert_outcomes(passed=2)  # each file against its own baseline
    pytester.makepyfile(**{"b/test_one": FIXED.format(f1=0.5)})
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*b__test_one.py__test_same_name.json*", "*f1: stored 0.6 (0.550–0.650) → now 0.5*"])


def test_baseline_names_are_readable_and_safe():
    assert baseline_filename("tests/test_a.py::test_x") == "tests__test_a.py__test_x.json"
    assert baseline_filename("t.py::TestC::test_x[a b/c]") == "t.py__TestC__test_x[a_b__c].json"
    long = baseline_filename("t.py::test_x[" + "p" * 300 + "]")
    assert len(long) < 160 and long != baseline_filename("t.py::test_x[" + "p" * 299 + "q]")


def test_empty_baselines_and_unknown_metrics_are_errors(pytester):
    pytester.makepyfile(test_empty='''
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.stats import Metric

def test_no_metrics(lorag_baseline):
    lorag_baseline(TaskResult({}))

def test_typo_in_metrics(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9)}), metrics=["f1", "acuracy"])

def test_stored_empty(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9)}), name="hand-written")
''')
    folder = pytester.path / "lorag_baselines"
    folder.mkdir()
    (folder / "hand-written.json").write_text('{"metrics": {}}')
    result = pytester.runpytest("--lorag-update-baselines", "-k", "not stored")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*the result has no metrics: *test_empty.py__test_no_metrics.json would check nothing*",
                                 "*metrics= names 'acuracy', not in the result (it has: f1)*"])
    assert not (folder / "test_empty.py__test_no_metrics.json").exists()
    result = pytester.runpytest("-k", "stored")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*hand-written.json holds no metrics, so it checks nothing*"])
    (folder / "hand-written.json").write_text('{"metric": {"f1": 1}}')
    pytester.runpytest("-k", "stored").stdout.fnmatch_lines(["*hand-written.json is not a baseline file (KeyError*"])


def test_unknown_marker_options_are_errors(pytester):
    pytester.makepyfile(test_typo='''
import pytest

@pytest.mark.lorag(grader="embedding", task="s1-relevance", n_evl=100)
def test_typo(lorag, lorag_baseline):
    lorag_baseline(lorag.result)

@pytest.mark.lorag(grader="embedding", task="s1-relevanse")
def test_unknown_task(lorag):
    lorag.result

@pytest.mark.lorag(task="s1-relevance")
def test_no_grader(lorag):
    lorag.result

def test_run_typo(lorag):
    lorag.run("embedding", "rag-p5", kk=3)
''')
    result = pytester.runpytest()
    result.assert_outcomes(errors=3, failed=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_typo*", "*lorag: unknown option n_evl for task 's1-relevance'; valid: *n_eval*",
        "*lorag: unknown task 's1-relevanse' (known: *",
        "*lorag: @pytest.mark.lorag needs grader=…*",
        "*lorag: unknown option kk for task 'rag-p5'; valid: *k, *",
    ])


def test_explicit_tolerance(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_thresholds='''
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.stats import Metric

def test_store(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9), "parse_failures": Metric(2, better="lower")}), name="tol")

def test_drop_within_tol(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.76, 0.6, 0.9), "parse_failures": Metric(2, better="lower")}), name="tol", tol=0.05)

def test_drop_beyond_tol(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.74, 0.6, 0.9), "parse_failures": Metric(2, better="lower")}), name="tol", tol=0.05)

def test_more_failures(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9), "parse_failures": Metric(3, better="lower")}), name="tol")
''')
    pytester.runpytest("-k", "test_store", "--lorag-update-baselines").assert_outcomes(passed=1, deselected=3)
    result = pytester.runpytest("-k", "not test_store")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*f1: stored 0.8 (0.700–0.900) → now 0.74; allowed ≥ 0.75 (tol 0.05)*",
                                 "*parse_failures: stored 2 → now 3; allowed ≤ 2 (stored value)*"])


def test_old_baseline_names_get_a_hint(pytester):
    pytester.makepyfile(test_old=FIXED.format(f1=0.8))
    folder = pytester.path / "lorag_baselines"
    folder.mkdir()
    (folder / "test_same_name.json").write_text('{"metrics": {"f1": {"value": 0.8}}}')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no lorag baseline at *test_old.py__test_same_name.json*keyed by node id: move "
                                 "test_same_name.json there*"])


def test_marker_is_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.lorag(grader, task*"])
