"""The plug-in docs cannot drift from the code (in the spirit of datasette's tests/test_docs.py):
every public name is documented, the example plug-in in the docs is the shipped one, and every
hook example in docs/plugins.md runs."""
import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from lorag_harness import hookspecs, testing
from lorag_harness.api import grader as api
from lorag_harness.api import registry
from lorag_harness.errors import LoragError
from lorag_harness.plugins import make_manager

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = (ROOT / "docs" / "plugins.md").read_text()
PYTEST = (ROOT / "docs" / "pytest.md").read_text()
HOOKS = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]


def _public(module) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [n for n, v in vars(module).items() if not n.startswith("_") and (
        (inspect.isfunction(v) and v.__module__ == module.__name__) or (n.isupper() and not inspect.ismodule(v)))]


@pytest.mark.parametrize("name", _public(api) + _public(testing))
def test_public_name_is_documented(name):
    assert f"`{name}" in PLUGINS, f"docs/plugins.md does not mention {name}"


def test_testing_exports_what_plugin_authors_use():
    assert {"check_grader", "contract_problems", "SAMPLE_PAIRS"} <= set(_public(testing))


FILE_BLOCKS = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", PLUGINS, re.S)


def test_docs_quote_the_example_plugin():
    assert {path for path, _ in FILE_BLOCKS} == {
        "examples/lorag-keyword-grader/lorag_keyword_grader.py", "examples/lorag-keyword-grader/pyproject.toml",
        "examples/lorag-keyword-grader/test_lorag_keyword_grader.py"}


@pytest.mark.parametrize("path, text", FILE_BLOCKS, ids=[p for p, _ in FILE_BLOCKS])
def test_quoted_files_are_the_shipped_files(path, text):
    assert text == (ROOT / path).read_text(), f"docs/plugins.md quotes an outdated {path}"


def test_the_example_plugins_own_test_passes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "lorag-keyword-grader"))
    spec = importlib.util.spec_from_file_location(
        "example_test", ROOT / "examples" / "lorag-keyword-grader" / "test_lorag_keyword_grader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_keyword_grader_keeps_the_contract()
    broken = sys.modules["lorag_keyword_grader"].KeywordGrader()
    broken.grade = lambda pairs, **kw: []  # the checker it documents does catch a broken grader
    with pytest.raises(AssertionError, match="returned 0 judgments for 6 pairs"):
        testing.check_grader(broken)


def _hook_examples() -> dict[str, types.ModuleType]:
    """Each python block of docs/plugins.md that implements a hook, imported as a module."""
    found = {}
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", PLUGINS, re.S)):
        hooks = re.findall(r"@hookimpl\ndef (register_\w+)\(", code)
        if hooks:
            module = types.ModuleType(f"docs_example_{i}")
            exec(compile(code, f"docs/plugins.md example {i}", "exec"), module.__dict__)
            for hook in hooks:
                found[hook] = module
    return found


EXAMPLES = _hook_examples()


def test_every_hook_has_an_example():
    assert sorted(EXAMPLES) == sorted(HOOKS)
    for hook in HOOKS:
        assert f"### {hook}" in PLUGINS


def _manager(hook):
    pm = make_manager(load_entry_points=False)
    pm.register(EXAMPLES[hook], name=f"docs-{hook}")
    return pm


def test_example_register_graders():
    entry, arg = registry.lookup(registry.graders(_manager("register_graders")), "keyword:2", "grader")
    testing.check_grader(entry.factory(arg, registry.GraderContext()))


def test_example_register_tasks(r8_small):
    from lorag_harness.api.types import Judgment
    from lorag_harness.evaluation.runner import build_task

    pm = _manager("register_tasks")
    task = build_task("coverage", {}, pm)
    task.check(r8_small)
    relevant = len([p for p in r8_small.eval_pairs if p.label])
    result = task.run(r8_small, lambda pairs, reasons=False: [Judgment(True) for _ in pairs])
    assert task.size(r8_small) == relevant and result.metrics["recall"].value == 1.0
    empty = type(r8_small)("none", [], [p for p in r8_small.eval_pairs if not p.label])
    with pytest.raises(LoragError, match="has no relevant evaluation pairs"):
        task.check(empty)


def test_example_register_datasets(tmp_path):
    from lorag_harness.evaluation.runner import load_dataset

    rows = [f"oil prices\tstory {i} on {'oil' if i % 2 else 'wheat'}\t{i % 2}" for i in range(10)]
    (tmp_path / "p.tsv").write_text("\n".join(rows + rows[:2]) + "\n")
    pm = _manager("register_datasets")
    ds = load_dataset(f"tsv:{tmp_path / 'p.tsv'}", {}, pm)
    assert len(ds.train_pairs) + len(ds.eval_pairs) == 10 and ds.notes == ["tsv: 2 duplicate pairs removed"]
    (tmp_path / "p.tsv").write_text(rows[0] + "\nno tabs here\n")
    with pytest.raises(LoragError, match=r"p.tsv:2: expected query, document and 0 or 1"):
        load_dataset(f"tsv:{tmp_path / 'p.tsv'}", {}, pm)


def test_example_register_commands(tmp_path, jsonl_writer):
    import click

    group = click.Group()
    _manager("register_commands").hook.register_commands(cli=group)
    data = jsonl_writer(tmp_path / "pairs.jsonl", [{"query": "q", "document": f"d{i}", "label": i % 2} for i in range(6)])
    out = CliRunner().invoke(group, ["count", f"jsonl:{data}"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("pairs: 3 training and 3 evaluation pairs\n")


def test_example_register_grader_options():
    import click

    found = []
    _manager("register_grader_options").hook.register_grader_options(register=found.append)

    @click.command()
    def cmd(**o):
        click.echo(o)

    for option in found:
        cmd = option(cmd)
    out = CliRunner().invoke(cmd, ["--keyword-min-hits", "2"])
    assert out.exit_code == 0 and "'keyword_min_hits': 2" in out.output
    assert CliRunner().invoke(cmd, ["--keyword-min-hits", "0"]).exit_code == 2


def test_pytest_docs_name_every_option():
    from lorag_harness.pytest_plugin import CONTEXT_KEYS, DATASET_KEYS, check_options

    for name in ("--lorag-update-baselines", "lorag_baselines", "lorag_cache", "lorag_baseline(result, name=None, "
                 "tol=None, metrics=None)", "@pytest.mark.lorag", *DATASET_KEYS, *CONTEXT_KEYS):
        assert name in PYTEST, f"docs/pytest.md does not mention {name}"
    with pytest.raises(LoragError) as e:
        check_options({"grader": "embedding", "task": "s1-relevance", "n_evl": 100})
    assert f"lorag: {e.value}" in PYTEST  # the error shown in the docs is the real one


def test_docs_link_each_other():
    assert "(hooks.md)" in PLUGINS and "(pytest.md)" in PLUGINS and "(plugins.md)" in (ROOT / "docs" / "hooks.md").read_text()


def _quoted_import_paths() -> set[tuple[str, str | None]]:
    """``(module, name)`` for every ``lorag_harness…`` path the docs, README and examples quote."""
    import re

    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in [root / "README.md", *(root / "docs").glob("*.md"), *(root / "examples").rglob("*.py")]]
    found = set()
    for text in texts:
        for module, names in re.findall(r"from (lorag_harness[\w.]*) import ([\w, ]+)", text):
            found |= {(module, n.strip().split(" as ")[0]) for n in names.split(",") if n.strip()}
        for dotted in re.findall(r"`(lorag_harness(?:\.\w+)+)", text):
            if dotted != "lorag_harness.builtin":  # the built-in plug-ins' entry-point group, not a module
                found.add((dotted, None))
    return found


def test_every_quoted_import_path_works():
    """Paths in the docs and examples stay importable (re-exports pin the public ones)."""
    import importlib

    broken = []
    for module, name in sorted(_quoted_import_paths(), key=str):
        parts = module.split(".")
        for cut in range(len(parts), 0, -1):  # a dotted path may end in attributes: module.Class.method
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        else:
            broken.append(module)
            continue
        try:
            for attr in parts[cut:] + ([name] if name else []):
                obj = getattr(obj, attr)
        except AttributeError:
            broken.append(f"{module}{'.' + name if name else ''}")
    assert broken == []
