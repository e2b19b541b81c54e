"""Every hookspec is documented with its exact signature and exercised by a test (datasette style)."""
import inspect
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lorag_harness import hookimpl, hookspecs, registry
from lorag_harness.plugins import make_manager

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "hooks.md").read_text()
HOOKS = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    signature = f"## {hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert signature.replace(" ", "") in DOCS.replace(" ", "")


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in globals()


def test_hook_register_graders():
    from lorag_harness.model import Judgment

    class P:
        @hookimpl
        def register_graders(self, register):
            register("yes", lambda arg, ctx: type("G", (), {"name": "yes", "grade": lambda s, ps, **k: [Judgment(True)] * len(ps)})())

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    entry, arg = registry.lookup(registry.graders(pm), "yes:1", "grader")
    assert entry.plugin == "p" and arg == "1"
    assert [j.relevant for j in entry.factory(arg, registry.GraderContext()).grade([1, 2])] == [True, True]


def test_hook_register_tasks():
    class P:
        @hookimpl
        def register_tasks(self, register):
            register("count", lambda limit=3: limit)

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    from lorag_harness.runner import build_task

    assert build_task("count", {"count": {"limit": 7, "ignored": 1}}, pm) == 7


def test_hook_register_datasets():
    from lorag_harness.model import Dataset, Pair

    class P:
        @hookimpl
        def register_datasets(self, register):
            register("tiny", lambda arg, options: Dataset("tiny", [], [Pair("q", arg, True)]))

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    from lorag_harness.runner import load_dataset

    assert load_dataset("tiny:doc", {}, pm).eval_pairs[0].document == "doc"


def test_hook_register_commands():
    class P:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                click.echo("hi")

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    group = click.Group()
    pm.hook.register_commands(cli=group)
    assert CliRunner().invoke(group, ["hello"]).output == "hi\n"
    assert {"train", "merge", "demo"} <= set(group.commands)  # the trainers plugin's commands


def test_docs_name_every_hook_and_no_other():
    assert sorted(re.findall(r"^## (\w+)\(", DOCS, re.M)) == sorted(HOOKS)
