"""Every hookspec is documented with its exact signature and exercised by a test (datasette style)."""
import inspect
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lorag_harness import hookimpl, hookspecs
from lorag_harness.api import registry
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
    from lorag_harness.api.types import Judgment

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
    from lorag_harness.evaluation.runner import build_task

    assert build_task("count", {"count": {"limit": 7, "ignored": 1}}, pm) == 7


def test_hook_register_datasets():
    from lorag_harness.api.types import Dataset, Pair

    class P:
        @hookimpl
        def register_datasets(self, register):
            register("tiny", lambda arg, options: Dataset("tiny", [], [Pair("q", arg, True)]))

    pm = make_manager(load_entry_points=False)
    pm.register(P(), name="p")
    from lorag_harness.evaluation.runner import load_dataset

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


def test_hook_register_grader_options(tmp_path):
    """A plug-in's grader option is taken by every command that builds graders and reaches the factory."""
    import os
    import subprocess
    import sys

    plugin = tmp_path / "optplug.py"
    plugin.write_text(
        "import click\nfrom lorag_harness import hookimpl, Grader, Judgment\n"
        "class G(Grader):\n    name = 'opt'\n    def __init__(self, n): self.n = n\n"
        "    def grade(self, pairs, *, reasons=False, advance=None):\n"
        "        advance and advance(len(pairs))\n"
        "        return [Judgment(len(p.document) >= self.n, score=float(len(p.document) >= self.n)) for p in pairs]\n"
        "@hookimpl\ndef register_grader_options(register):\n"
        "    register(click.option('--opt-min-length', type=int, default=1))\n"
        "@hookimpl\ndef register_graders(register):\n"
        "    register('opt', lambda arg, ctx: G(ctx.options['opt_min_length']))\n")
    env = {**os.environ, "LORAG_PLUGINS": str(plugin)}
    lorag = [sys.executable, "-m", "lorag_harness"]
    for command in (["check", "opt"], ["bench", "--help"], ["grade", "--help"], ["serve", "--help"]):
        out = subprocess.run(lorag + command + ["--opt-min-length", "3"] * (command[0] == "check"), env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "--opt-min-length" in out.stdout or command[0] == "check"
    rows = tmp_path / "pairs.jsonl"
    rows.write_text('{"query": "q", "document": "ab"}\n{"query": "q", "document": "abcd"}\n')
    out = subprocess.run(lorag + ["grade", "-g", "opt", "--in", str(rows), "--out", str(tmp_path / "j.jsonl"),
                                  "--no-cache", "--opt-min-length", "3"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert [line.count('"relevant": true') for line in (tmp_path / "j.jsonl").read_text().splitlines()] == [0, 1]


def test_docs_name_every_hook_and_no_other():
    assert sorted(re.findall(r"^## (\w+)\(", DOCS, re.M)) == sorted(HOOKS)
