"""The house rules, checked: plug-ins install under the project's namespace, arrows point one way
(plug-ins -> core, never back), and no module imports form a cycle (function-level imports too)."""
import ast
import subprocess
import sys
import zipfile
from pathlib import Path


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


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``name`` imports anywhere in its file (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)
    return out


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


def test_wheel_installs_plugins_under_the_project_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("lorag_harness-*.whl"))
    names = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")]
    assert {n.split("/")[0] for n in names} == {"lorag_harness"}
    expected = {f"{package.replace('.', '/')}/{p.relative_to(ROOT / folder)}" for folder, package in FOLDERS.items()
                for p in (ROOT / folder).rglob("*.py")}
    assert expected <= set(names), sorted(expected - set(names))
