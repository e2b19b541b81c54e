import pytest
"""A bench killed midway resumes without losing or recomputing stored judgments."""
import json
import signal
import subprocess
import sys
import time

from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.api.types import Judgment
from lorag_harness.evaluation.runner import make_judge

SCRIPT = r'''
import json, sys, time
from lorag_harness import Judgment, hookimpl
from lorag_harness.plugins import pm
from lorag_harness.evaluation.runner import BenchConfig, run_bench

LOG = sys.argv[2]

class Slow:
    name = "slow"
    def fingerprint(self):
        return "slow-v1"
    def grade(self, pairs, reasons=False, advance=None):
        out = []
        for p in pairs:
            time.sleep(0.05)
            out.append(Judgment(len(p.document) % 2 == 0, 0.5))
        with open(LOG, "a") as fh:  # written once the chunk is made, before it is stored
            fh.write("".join(p.pair_id + "\n" for p in pairs))
        return out

class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("slow", lambda arg, ctx: Slow())

pm.register(Plugin(), name="slow")
cfg = BenchConfig(graders=["slow"], tasks=["s1-relevance"], cache_path=sys.argv[1], chunk_size=8,
                  dataset_options={"n_train": 10, "n_eval": 120})
result = run_bench(cfg, pm)
print(json.dumps(result.results["s1-relevance"]["slow"].metrics["accuracy"].to_dict()))
'''


@pytest.mark.integration  # kills a real bench process
def test_killed_bench_resumes(tmp_path):
    script, cache, log = tmp_path / "run.py", tmp_path / "c.sqlite", tmp_path / "graded.log"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 40):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = log.read_text().split()
    assert 40 <= len(first) < 120, "killed midway"
    stored_before = JudgmentCache(cache).count()
    assert stored_before >= len(first) - 8  # at most the chunk in flight is not stored

    done = subprocess.run([sys.executable, str(script), str(cache), str(log)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    graded = log.read_text().split()
    second = graded[len(first):]
    assert not set(second) & set(first[:stored_before])  # nothing stored was recomputed
    assert sorted(set(graded)) == sorted(set(first) | set(second)) and len(set(graded)) == 120  # nothing lost
    assert len(second) == 120 - stored_before
    assert JudgmentCache(cache).count() == 120
    assert json.loads(done.stdout.strip().splitlines()[-1])["n"] == 120


def test_cache_prefers_exact_reasons_and_isolates_graders(tmp_path):
    cache = JudgmentCache(tmp_path / "c.sqlite")
    cache.put_many("g1", [("p", Judgment(True, 0.9, raw_text="plain"))], reasons=False)
    cache.put_many("g1", [("p", Judgment(True, 0.9, {"summary": "s"}, raw_text="with reason"))], reasons=True)
    assert cache.get_many("g1", ["p"], reasons=False)["p"].raw_text == "plain"
    assert cache.get_many("g1", ["p"], reasons=True)["p"].reason == {"summary": "s"}
    assert cache.get_many("g2", ["p"], reasons=False) == {}
    reader = JudgmentCache(tmp_path / "c.sqlite")  # a second connection reads while the first writes
    cache.put_many("g1", [("q", Judgment(False, 0.1))], reasons=False)
    assert reader.count("g1") == 3


def test_judge_deduplicates_and_keeps_order(tmp_path):
    from lorag_harness.api.types import Pair

    calls = []

    class Echo:
        name = "echo"

        def grade(self, pairs, reasons=False, advance=None):
            calls.append(len(pairs))
            return [Judgment(p.label, float(p.label)) for p in pairs]

    pairs = [Pair("q", f"d{i % 3}", i % 3 == 0) for i in range(9)]
    judge = make_judge(Echo(), JudgmentCache(":memory:"), chunk_size=2)
    out = judge(pairs)
    assert [j.relevant for j in out] == [p.label for p in pairs]
    assert sum(calls) == 3  # three distinct pairs graded once each
