"""The plugin manager: built-in plugins and entry points, registered alike."""
from __future__ import annotations

import importlib
import os

import pluggy

from . import hookspecs

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
    "lorag_harness.data.builtin",
    "lorag_harness.trainers.commands",
    "lorag_harness.trainers.rerank_train",
    "lorag_harness.trainers.cls_train",
    "lorag_harness.serve",
)


def make_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        _load_entry_points(pm)
    pm.check_pending()
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Load third-party plugins; ``LORAG_PLUGINS=a,b`` limits them to those names ("" loads none)."""
    allowed = os.environ.get("LORAG_PLUGINS")
    if allowed is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        return
    names = {n.strip() for n in allowed.split(",") if n.strip()}
    for name in sorted(names):
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)


pm = make_manager()


def plugin_origins(manager: pluggy.PluginManager | None = None) -> dict[str, str]:
    """Plugin name -> where it comes from ("built-in" or its distribution)."""
    manager = manager or pm
    dists = {manager.get_name(p): f"{d.project_name} {d.version}" for p, d in manager.list_plugin_distinfo()}
    return {manager.get_name(p): dists.get(manager.get_name(p), "built-in") for p in manager.get_plugins()}
