"""The plugin manager: built-in plugins and entry points, registered alike."""
from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import os
import sys
from pathlib import Path

import pluggy

from . import hookspecs
from .errors import LoragError

ENTRY_POINT_GROUP = "lorag_harness"

DEFAULT_PLUGINS = (
    "lorag_harness.graders.lm_graders",
    "lorag_harness.graders.embedding",
    "lorag_harness.graders.cross_encoder",
    "lorag_harness.graders.cls_head",
    "lorag_harness.graders.openai_judge",
    "lorag_harness.tasks.s1_relevance",
    "lorag_harness.tasks.s2_reasoning",
    "lorag_harness.tasks.rag_p5",
    "lorag_harness.tasks.rerank",
    "lorag_harness.tasks.judge_agreement",
    "lorag_harness.data.builtin",
    "lorag_harness.data.beir",
    "lorag_harness.trainers.commands",
    "lorag_harness.grade",
    "lorag_harness.trainers.rerank_train",
    "lorag_harness.trainers.cls_train",
    "lorag_harness.trainers.pairs_cmd",
    "lorag_harness.trainers.embedding_train",
    "lorag_harness.serve",
)


class Manager(pluggy.PluginManager):
    """The plugin manager, remembering where each third-party plug-in came from and which failed to load."""

    def __init__(self):
        super().__init__(ENTRY_POINT_GROUP)
        self.origins: dict[str, str] = {}  # plug-in name -> "dist version", "module x.y" or "file path"
        self.load_errors: list[str] = []  # one line each; raised by check_plugins() on first use


def make_manager(load_entry_points: bool = True) -> Manager:
    """Built-in plug-ins, then third-party ones (entry points, or what LORAG_PLUGINS names).
    A third-party plug-in that fails to load is recorded in ``load_errors``, not raised here."""
    pm = Manager()
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.check_pending()
    if load_entry_points:
        _load_third_party(pm)
    return pm


def _load_third_party(pm: Manager) -> None:
    """Every ``lorag_harness`` entry point; with ``LORAG_PLUGINS=a,b`` only those, where each item is
    an entry-point name, a dotted module path or a .py file ("" loads none)."""
    entry_points = {ep.name: ep for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    wanted = os.environ.get("LORAG_PLUGINS")
    if wanted is None:
        for ep in entry_points.values():
            _add(pm, ep.name, lambda ep=ep: ep.load(), _dist(ep), "entry point")
        return
    for item in dict.fromkeys(s.strip() for s in wanted.split(",") if s.strip()):
        if item in entry_points:
            ep = entry_points[item]
            _add(pm, item, ep.load, _dist(ep), "LORAG_PLUGINS")
        elif item.endswith(".py") or "/" in item or os.sep in item:
            _add(pm, item, lambda item=item: _import_file(Path(item)), f"file {Path(item).resolve()}", "LORAG_PLUGINS")
        elif _module_exists(item):
            _add(pm, item, lambda item=item: importlib.import_module(item), f"module {item}", "LORAG_PLUGINS")
        else:
            known = ", ".join(sorted(entry_points)) or "none installed"
            pm.load_errors.append(f"LORAG_PLUGINS: unknown plug-in {item!r}: not an entry point ({known}), "
                                  "an importable module or a .py file")


def _dist(ep) -> str:
    return f"{ep.dist.name} {ep.dist.version}" if getattr(ep, "dist", None) else "entry point"


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that does not exist, or a bad name
        return False


def _import_file(path: Path):
    """Import a plug-in module from a .py file (plug-in development without packaging)."""
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    stem = path.stem
    name = stem if stem.isidentifier() and stem not in sys.modules and not _module_exists(stem) else None
    if name is None and sys.modules.get(stem) is not None and getattr(sys.modules[stem], "__file__", None) == str(path.resolve()):
        return sys.modules[stem]
    name = name or f"lorag_plugin_{abs(hash(str(path.resolve()))):x}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _add(pm: Manager, name: str, load, origin: str, via: str) -> None:
    """Import and register one plug-in; a failure becomes one line in ``pm.load_errors``."""
    fix = "" if via == "LORAG_PLUGINS" else " (LORAG_PLUGINS=name,… loads only the plug-ins named; LORAG_PLUGINS= none)"
    try:
        plugin = load()
    except Exception as e:  # noqa: BLE001 - reported as one line naming the plug-in
        pm.load_errors.append(f"plug-in {name!r} ({origin}) failed to import: {type(e).__name__}: {e}{fix}")
        return
    if pm.is_registered(plugin) or pm.get_plugin(name) is not None:
        return
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        pm.load_errors.append(f"plug-in {name!r} ({origin}): {' '.join(str(e).split())}{fix}")
        return
    if not pm.get_hookcallers(plugin):
        pm.unregister(name=name)
        hooks = ", ".join(n for n in dir(hookspecs) if n.startswith("register_"))
        pm.load_errors.append(f"plug-in {name!r} ({origin}) implements no hook: decorate {hooks} with "
                              "@lorag_harness.hookimpl")
        return
    pm.origins[name] = origin


def check_plugins(manager: pluggy.PluginManager | None = None) -> None:
    """Raise the first plug-in loading failure as a LoragError (one line)."""
    errors = getattr(manager or pm, "load_errors", [])
    if errors:
        more = f" (and {len(errors) - 1} more plug-in errors)" if len(errors) > 1 else ""
        raise LoragError(errors[0] + more)


pm = make_manager()


def plugin_origins(manager: pluggy.PluginManager | None = None) -> dict[str, str]:
    """Plugin name -> where it comes from ("built-in", its distribution, "module …" or "file …")."""
    manager = manager or pm
    origins = dict(getattr(manager, "origins", {}))
    origins.update({manager.get_name(p): f"{d.project_name} {d.version}" for p, d in manager.list_plugin_distinfo()})
    return {manager.get_name(p): origins.get(manager.get_name(p), "built-in") for p in manager.get_plugins()}
