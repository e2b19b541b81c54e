import json

pytest_plugins = ["pytester"]

CONFTEST = '''
from lorag_harness import Judgment, hookimpl
from lorag_harness.plugins import pm


class AlwaysRelevant:
    name = "always"

    def grade(self, pairs, reasons=False, advance=None):
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


def test_baseline_written_passes_then_catches_a_worse_grader(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_reg=TEST.format(grader="embedding"))
    missing = pytester.runpytest("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no lorag baseline*--lorag-update-baselines*"])

    pytester.runpytest("--lorag-update-baselines").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "lorag_baselines" / "test_s1_no_regression.json").read_text())
    assert stored["metrics"]["accuracy"]["value"] > 0.7 and stored["metrics"]["accuracy"]["low"] is not None

    pytester.runpytest().assert_outcomes(passed=1)  # same grader: within its interval

    pytester.makepyfile(test_reg=TEST.format(grader="always"))
    worse = pytester.runpytest()
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*lorag regression against*", "*accuracy: stored 0.* → now 0.5; allowed ≥ 0.*"])


def test_explicit_tolerance(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_thresholds='''
from lorag_harness.results import TaskResult
from lorag_harness.stats import Metric

def test_store(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9), "parse_failures": Metric(2)}), name="tol")

def test_drop_within_tol(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.76, 0.6, 0.9), "parse_failures": Metric(2)}), name="tol", tol=0.05)

def test_drop_beyond_tol(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.74, 0.6, 0.9), "parse_failures": Metric(2)}), name="tol", tol=0.05)

def test_more_failures(lorag_baseline):
    lorag_baseline(TaskResult({"f1": Metric(0.8, 0.7, 0.9), "parse_failures": Metric(3)}), name="tol")
''')
    pytester.runpytest("-k", "test_store", "--lorag-update-baselines").assert_outcomes(passed=1, deselected=3)
    result = pytester.runpytest("-k", "not test_store")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*f1: stored 0.8 (0.700–0.900) → now 0.74; allowed ≥ 0.75 (tol 0.05)*",
                                 "*parse_failures: stored 2 → now 3; allowed ≤ 2 (stored value)*"])


def test_marker_is_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.lorag(grader, task*"])
