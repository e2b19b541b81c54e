"""The house rules, checked: plug-ins install under the project's namespace, arrows point one way
(plug-ins -> core, never back), and no module imports form a cycle (function-level imports too)."""
import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"lorag_harness": "lorag_harness", "graders": "lorag_harness.graders", "tasks": "lorag_harness.tasks",
           "trainers": "lorag_harness.trainers"}
PLUGIN_PACKAGES = ("lorag_harness.graders", "lorag_harness.tasks", "lorag_harness.trainers")


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


STRING_IMPORT = re.compile(r"^(lorag_harness(?:\.\w+)+)(?::\w+)?$")


def _resolve(target: str, known: set[str]) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def import_edges(name: str, path: Path, known: set[str]) -> list[tuple[str, str]]:
    """``(module, where)`` for each module of ours that ``name`` imports: ``where`` is "top" (module level),
    "local" (inside a function) or "string" (a ``"lorag_harness.x[:attr]"`` constant imported by name:
    DEFAULT_PLUGINS, lazy registrations, CORE_COMMANDS)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    local_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and STRING_IMPORT.match(node.value):
            targets, where = [STRING_IMPORT.match(node.value).group(1)], "string"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            where = "local" if id(node) in local_nodes else "top"
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            t = _resolve(t, known)
            if t and t != name and not name.startswith(t + "."):
                out.append((t, where))
    # a relative package name (graders/__init__ registers f"{__name__}.lm_graders:make_base")
    if path.name == "__init__.py":
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.match(r"^\w+:\w+$", node.value):
                t = _resolve(f"{name}.{node.value.partition(':')[0]}", known)
                if t and t != name:
                    out.append((t, "string"))
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    return {t for t, _ in import_edges(name, path, known)}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def test_core_never_imports_the_builtin_plugins():
    offenders = [f"{m} -> {t}" for m, ts in graph().items() if not m.startswith(PLUGIN_PACKAGES)
                 for t in ts if t.startswith(PLUGIN_PACKAGES)]
    assert offenders == []


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    # a package's __init__ importing its own submodules is not a cycle worth reporting
    cycles = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert cycles == []


def test_string_imports_are_seen():
    """The graph includes imports named as strings: the lazy registrations and the plugin list."""
    g = graph()
    assert "lorag_harness.graders.embedding" in g["lorag_harness.graders"]
    assert "lorag_harness.tasks.rerank" in g["lorag_harness.tasks"]
    assert "lorag_harness.cli.bench" in g["lorag_harness.cli.app"]


def test_builtin_plugins_are_entry_points_of_existing_modules():
    from lorag_harness.plugins import DEFAULT_PLUGINS

    assert set(DEFAULT_PLUGINS) <= set(modules())
    assert {"lorag_harness.graders", "lorag_harness.tasks", "lorag_harness.data.builtin"} <= set(DEFAULT_PLUGINS)


def test_local_imports_defer_something():
    """A function-level import of a module the file already loads at module level (directly or through
    what it imports) defers nothing: it belongs at the top."""
    mods = modules()
    known = set(mods)
    edges = {n: import_edges(n, p, known) for n, p in mods.items()}
    top = {n: {t for t, w in e if w == "top"} for n, e in edges.items()}

    def loaded(n, seen=None):
        seen = set() if seen is None else seen
        for t in top.get(n, ()):
            for m in {t, *(t.split(".")[i] for i in ())}:
                if m not in seen:
                    seen.add(m)
                    loaded(m, seen)
        return seen

    offenders = sorted(f"{n} -> {t}" for n, e in edges.items() for t, w in e
                       if w == "local" and t in loaded(n))
    assert offenders == []


def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('MODULES', *sys.modules)"],
                         capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.rpartition("MODULES")[2].split())


def test_light_commands_do_not_import_torch():
    """``lorag --help``, ``lorag plugins`` and every command's help load no model library."""
    argvs = [["--help"], ["plugins"], ["check", "--help"], ["bench", "--help"], ["train", "--help"],
             ["train", "s1", "--help"], ["grade", "--help"], ["serve", "--help"]]
    for argv in argvs:
        loaded = _modules_after("import sys; from lorag_harness.cli.app import cli\n"
                                f"try:\n    cli({argv!r}, standalone_mode=False)\nexcept SystemExit:\n    pass")
        assert not {"torch", "transformers", "sentence_transformers"} & loaded, argv
