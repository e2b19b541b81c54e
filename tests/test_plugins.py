import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from lorag_harness import hookimpl
from lorag_harness.api import registry
from lorag_harness.errors import LoragError
from lorag_harness.plugins import DEFAULT_PLUGINS, make_manager, plugin_origins

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_registered_through_hooks():
    pm = make_manager(load_entry_points=False)
    assert set(registry.graders(pm)) >= {"base", "s1", "s2", "embedding"}
    assert set(registry.tasks(pm)) >= {"s1-relevance", "s2-reasoning", "rag-p5"}
    assert set(registry.datasets(pm)) >= {"reuters-r8", "ag_news", "jsonl"}
    entry = registry.graders(pm)["embedding"]
    assert entry.plugin == "lorag_harness.graders"
    assert entry.target == "lorag_harness.graders.embedding:make_embedding"  # imported only when used
    assert entry.factory.__name__ == "make_embedding"
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
    with pytest.raises(LoragError, match=r"unknown grader 'nope' \(known: base, .*embedding"):
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
    code = ("from lorag_harness.api import registry;from lorag_harness.plugins import pm, plugin_origins;"
            "e=registry.graders()['keyword'];print(e.plugin, plugin_origins()[e.plugin])")
    out = _run(code, installed_example)
    assert out.split() == ["keyword", "lorag-keyword-grader", "0.1.0"]
    # LORAG_PLUGINS limits which entry points load
    code = "from lorag_harness.api import registry;print('keyword' in registry.graders())"
    assert _run(code, installed_example, {"LORAG_PLUGINS": ""}).strip() == "False"
    assert _run(code, installed_example, {"LORAG_PLUGINS": "keyword"}).strip() == "True"


def test_example_plugin_runs_in_bench(installed_example, tmp_path, jsonl_writer):
    rows = [r for i in range(4) for r in (
        {"query": "crude oil prices", "document": f"oil prices rose as crude stocks fell, day {i}", "label": True},
        {"query": "crude oil prices", "document": f"the bank cut its lending rate, day {i}", "label": False})]
    data = jsonl_writer(tmp_path / "pairs.jsonl", rows)
    out = subprocess.run(
        [sys.executable, "-m", "lorag_harness", "bench", "-g", "keyword", "-t", "s1-relevance", "-d", f"jsonl:{data}",
         "--no-cache", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed_example)},
    )
    assert out.returncode == 0, out.stderr
    acc = json.loads((tmp_path / "r.json").read_text())["results"]["s1-relevance"]["keyword"]["metrics"]["accuracy"]
    assert acc["value"] == 1.0 and acc["n"] == 4


def _lorag(args, cwd, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LORAG_PLUGINS", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "lorag_harness", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_lorag_plugins_takes_files_and_module_paths(tmp_path):
    """Plug-in development without packaging: a .py file, or a module on the path."""
    shutil.copy(ROOT / "examples" / "lorag-keyword-grader" / "lorag_keyword_grader.py", tmp_path / "my_grader.py")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "tasks.py").write_text(
        "from lorag_harness import hookimpl\n\n@hookimpl\ndef register_tasks(register):\n"
        "    register('count', lambda: None, 'Counts pairs')\n")
    out = _lorag(["plugins"], tmp_path, {"LORAG_PLUGINS": "./my_grader.py, mypkg.tasks", "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    keyword = next(line for line in out.stdout.splitlines() if line.strip("│ ").startswith("keyword"))
    assert "./my_grader.py" in keyword and "│ file" in keyword  # plug-in name, and where it comes from
    count = next(line for line in out.stdout.splitlines() if line.strip("│ ").startswith("count"))
    assert "module mypkg.tasks" in count


@pytest.mark.parametrize("spec, files, message", [
    ("nope", {}, "LORAG_PLUGINS: unknown plug-in 'nope': not an entry point (none installed), an importable module "
                 "or a .py file"),
    ("./gone.py", {}, "plug-in './gone.py' (file {tmp}/gone.py) failed to import: FileNotFoundError: no file gone.py"),
    ("./broken.py", {"broken.py": "import not_a_module\n"},
     "plug-in './broken.py' (file {tmp}/broken.py) failed to import: ModuleNotFoundError: No module named 'not_a_module'"),
    ("./nohooks.py", {"nohooks.py": "def register_graders(register):\n    pass\n"},
     "plug-in './nohooks.py' (file {tmp}/nohooks.py) implements no hook: decorate register_commands, "
     "register_datasets, register_grader_options, register_graders, register_tasks with @lorag_harness.hookimpl"),
    ("./typo.py", {"typo.py": "from lorag_harness import hookimpl\n@hookimpl\ndef register_grader(register):\n    pass\n"},
     "plug-in './typo.py' (file {tmp}/typo.py): unknown hook 'register_grader'"),
])
def test_bad_lorag_plugins_are_errors_on_first_use(tmp_path, monkeypatch, spec, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LORAG_PLUGINS", spec)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    pm = make_manager()  # loading never raises: the error comes when the plug-ins are used
    with pytest.raises(LoragError) as e:
        registry.graders(pm)
    assert str(e.value).startswith(message.format(tmp=tmp_path)) and "\n" not in str(e.value)


def test_a_bad_plugin_is_one_line_on_the_command_line(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module\n")
    out = _lorag(["plugins"], tmp_path, {"LORAG_PLUGINS": "./broken.py"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"error: plug-in './broken.py' (file {tmp_path}/broken.py) failed to import: "
                                  "ModuleNotFoundError: No module named 'not_a_module'")


def test_a_broken_entry_point_names_itself_and_the_way_out(tmp_path, monkeypatch):
    """An installed plug-in that no longer imports stops every command with one line, not a traceback."""
    dist = tmp_path / "lorag_broken-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lorag-broken\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[lorag_harness]\nbroken = lorag_broken_plugin\n")
    (tmp_path / "lorag_broken_plugin.py").write_text("raise RuntimeError('needs a newer lorag')\n")
    out = _lorag(["bench", "-g", "base", "-t", "s1-relevance"], tmp_path, {"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert " ".join(out.stderr.split()) == (
        "error: plug-in 'broken' (lorag-broken 0.3) failed to import: RuntimeError: needs a newer lorag "
        "(LORAG_PLUGINS=name,… loads only the plug-ins named; LORAG_PLUGINS= none)")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LORAG_PLUGINS", "")
    assert "keyword" not in registry.graders(make_manager())  # the way out works
    monkeypatch.setenv("LORAG_PLUGINS", "nope")
    with pytest.raises(LoragError, match=r"unknown plug-in 'nope': not an entry point \(broken\)"):
        registry.graders(make_manager())
