import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from lorag_harness import hookimpl, registry
from lorag_harness.errors import LoragError
from lorag_harness.plugins import DEFAULT_PLUGINS, make_manager, plugin_origins

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_registered_through_hooks():
    pm = make_manager(load_entry_points=False)
    assert set(registry.graders(pm)) >= {"base", "s1", "s2", "embedding"}
    assert set(registry.tasks(pm)) >= {"s1-relevance", "s2-reasoning", "rag-p5"}
    assert set(registry.datasets(pm)) >= {"reuters-r8", "ag_news", "jsonl"}
    assert registry.graders(pm)["embedding"].plugin == "lorag_harness.graders.embedding"
    assert set(plugin_origins(pm)) == set(DEFAULT_PLUGINS)
    assert set(plugin_origins(pm).values()) == {"built-in"}


def test_misspelled_hook_is_caught():
    class Typo:
        @hookimpl
        def register_grader(self, register):  # missing "s"
            pass

    pm = make_manager(load_entry_points=False)
    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_duplicate_names_are_refused():
    class Again:
        @hookimpl
        def register_graders(self, register):
            register("base", lambda arg, ctx: None)

    pm = make_manager(load_entry_points=False)
    pm.register(Again(), name="again")
    with pytest.raises(LoragError, match="registered by both"):
        registry.graders(pm)


def test_unknown_spec_lists_known_names():
    pm = make_manager(load_entry_points=False)
    with pytest.raises(LoragError, match=r"unknown grader 'nope' \(known: base, embedding"):
        registry.lookup(registry.graders(pm), "nope:x", "grader")
    assert registry.split_spec("s1:adapters/s1") == ("s1", "adapters/s1")
    assert registry.split_spec("base") == ("base", None)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install the README's example plug-in into a target folder."""
    target = tmp_path_factory.mktemp("site")
    source = shutil.copytree(ROOT / "examples" / "lorag-keyword-grader", tmp_path_factory.mktemp("src") / "plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(source)],
        check=True,
    )
    return target


def _run(code, target, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "LORAG_PLUGINS"}
    env.update(PYTHONPATH=str(target), **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout


def test_example_plugin_discovered_by_entry_point(installed_example):
    code = ("from lorag_harness import registry;from lorag_harness.plugins import pm, plugin_origins;"
            "e=registry.graders()['keyword'];print(e.plugin, plugin_origins()[e.plugin])")
    out = _run(code, installed_example)
    assert out.split() == ["keyword", "lorag-keyword-grader", "0.1.0"]
    # LORAG_PLUGINS limits which entry points load
    code = "from lorag_harness import registry;print('keyword' in registry.graders())"
    assert _run(code, installed_example, {"LORAG_PLUGINS": ""}).strip() == "False"
    assert _run(code, installed_example, {"LORAG_PLUGINS": "keyword"}).strip() == "True"


def test_example_plugin_runs_in_bench(installed_example, tmp_path, jsonl_writer):
    rows = [{"query": "crude oil prices", "document": "oil prices rose as crude stocks fell", "label": True},
            {"query": "crude oil prices", "document": "the bank cut its lending rate", "label": False}] * 4
    data = jsonl_writer(tmp_path / "pairs.jsonl", rows)
    out = subprocess.run(
        [sys.executable, "-m", "lorag_harness", "bench", "-g", "keyword", "-t", "s1-relevance", "-d", f"jsonl:{data}",
         "--no-cache", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed_example)},
    )
    assert out.returncode == 0, out.stderr
    acc = json.loads((tmp_path / "r.json").read_text())["results"]["s1-relevance"]["keyword"]["metrics"]["accuracy"]
    assert acc["value"] == 1.0 and acc["n"] == 4
