"""Plug-ins and grader specs that go wrong are named, and cheap checks come before slow ones."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lorag_harness import Judgment, hookimpl
from lorag_harness.api import Grader
from lorag_harness.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]


class Fine(Grader):
    def __init__(self, name="fine"):
        self.name = name

    def grade(self, pairs, *, reasons=False, advance=None):
        return [Judgment("oil" in p.document, 0.9 if "oil" in p.document else 0.1) for p in pairs]


class BadPrint(Fine):
    def fingerprint(self):
        raise KeyError("model_path")


BUILT = []


def recorder(arg, context):
    BUILT.append(arg)
    return Fine("recorder")


class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("raiser", lambda arg, ctx: int(arg), "factory that raises")
        register("nothing", lambda arg, ctx: None, "factory that returns None")
        register("badprint", lambda arg, ctx: BadPrint("badprint"), "fingerprint raises")
        register("recorder", recorder, "records that it was built")


@pytest.fixture
def plugins(register_plugin):
    register_plugin(Plugin(), "refusals-plugin")
    BUILT.clear()


@pytest.fixture
def pairs_file(tmp_path):
    rows = [{"query": "crude oil", "document": f"{'oil' if i % 2 else 'rates'} story {i}", "label": bool(i % 2)}
            for i in range(24)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_check_names_a_factory_that_raises_or_returns_none(plugins):
    r = CliRunner().invoke(cli, ["check", "raiser:abc"])
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert any(ln.startswith("raiser:abc: its factory raised ValueError: invalid literal") for ln in lines), r.output
    assert "internal" not in r.output
    r = CliRunner().invoke(cli, ["check", "nothing"])
    assert r.exit_code == 1 and "nothing: its factory returned NoneType, not a grader" in r.output, r.output


def test_bench_names_a_factory_that_raises_and_a_fingerprint_that_raises(plugins, pairs_file):
    common = ["-t", "s1-relevance", "-d", f"jsonl:{pairs_file}", "--no-cache"]
    r = CliRunner().invoke(cli, ["bench", "-g", "raiser:abc", *common])
    assert r.exit_code == 1 and "grader raiser:abc: its factory raised ValueError" in r.output, r.output
    r = CliRunner().invoke(cli, ["bench", "-g", "nothing", *common])
    assert r.exit_code == 2 and "grader nothing: its factory returned NoneType" in r.output, r.output
    r = CliRunner().invoke(cli, ["bench", "-g", "badprint", *common])
    assert r.exit_code == 1 and "grader badprint: fingerprint() raised KeyError" in r.output, r.output


def test_the_keyword_example_refuses_a_bad_argument_in_one_line():
    env = {**os.environ, "LORAG_PLUGINS": str(ROOT / "examples" / "lorag-keyword-grader" / "lorag_keyword_grader.py")}
    proc = subprocess.run([sys.executable, "-m", "lorag_harness", "check", "keyword:abc"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "keyword:abc: the argument is the minimum overlap, a whole number" in proc.stdout + proc.stderr
    assert "internal" not in proc.stdout + proc.stderr


def test_adapter_paths_are_checked_before_any_grader_is_built(plugins, pairs_file, tmp_path):
    r = CliRunner().invoke(cli, ["bench", "-g", f"recorder,s1:{tmp_path / 'missing'}", "-t", "s1-relevance", "-d",
                                 f"jsonl:{pairs_file}", "--no-cache"])
    assert r.exit_code == 2 and "missing does not exist" in r.output, r.output
    assert BUILT == []  # the slow graders (the embedding grader calibrates) are not built first


def test_a_model_named_in_the_spec_is_blamed_as_the_spec(pairs_file, tmp_path):
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    r = CliRunner().invoke(cli, ["bench", "-g", f"embedding:{broken}", "-t", "s1-relevance", "-d",
                                 f"jsonl:{pairs_file}", "--no-cache"])
    assert r.exit_code == 2, r.output
    assert f"grader embedding:{broken}: could not load the model" in r.output and "--embedder" not in r.output


@pytest.mark.integration  # the hub's retries when offline
def test_a_hub_base_model_that_cannot_be_loaded_stops_before_work(plugins, pairs_file):
    start = time.monotonic()
    r = CliRunner().invoke(cli, ["bench", "-g", "recorder,base", "--base-model", "no-such-org/no-such-model-4242",
                                 "-t", "s1-relevance", "-d", f"jsonl:{pairs_file}", "--no-cache"])
    assert r.exit_code == 2, r.output
    assert "--base-model no-such-org/no-such-model-4242: no such folder, and not loadable" in r.output
    assert BUILT == [] and time.monotonic() - start < 120
