"""Collect what plugins register, remembering which plugin registered it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lorag_harness.errors import LoragError


@dataclass(frozen=True)
class Entry:
    """One registered grader, task or dataset. ``target`` is the factory, or ``"module:attr"`` naming it:
    the module is imported only when the entry is used (``lorag --help`` and ``lorag plugins`` import none)."""

    name: str
    target: Callable | str
    description: str
    plugin: str

    @property
    def factory(self) -> Callable:
        return load_target(self.target, self.plugin) if isinstance(self.target, str) else self.target


def load_target(target: str, plugin: str = "?") -> Callable:
    """``"package.module:attr"`` -> the object."""
    import importlib

    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise LoragError(f"plug-in {plugin!r} registered {target!r}, which does not import: {type(e).__name__}: {e}") from e


@dataclass
class GraderContext:
    """What a grader factory may use: model names, the dataset, runtime options."""

    base_model: str | None = None
    embedder: str | None = None
    dataset: Any = None  # lorag_harness.api.types.Dataset (its train split for calibration)
    batch_size: int = 8
    max_doc_tokens: int = 160
    quant: str | None = None
    options: dict = field(default_factory=dict)
    precision: str = "auto"  # auto | fp32 | bf16 (lorag_harness/backends/precision.py); quant "bf16" means bf16 too


@dataclass(kw_only=True)
class GraderSettings:
    """The grader-building fields a command's config carries (``BenchConfig``, ``GradeConfig``): a
    :class:`GraderContext` without the dataset. Keyword-only, so a config's own fields come first."""

    base_model: str | None = None
    embedder: str | None = None
    batch_size: int = 8
    max_doc_tokens: int = 160
    quant: str | None = None
    precision: str = "auto"  # auto | fp32 | bf16 (lorag_harness/backends/precision.py)
    grader_options: dict = field(default_factory=dict)  # GraderContext.options (e.g. judge_base_url); no secrets

    def grader_context(self, dataset=None) -> GraderContext:
        return GraderContext(self.base_model, self.embedder, dataset, self.batch_size, self.max_doc_tokens,
                             self.quant, dict(self.grader_options), self.precision)


def _collect(hook, kind: str) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for impl in hook.get_hookimpls():  # registration order
        def register(name, factory: Callable | str, description: str = "", _plugin=impl.plugin_name):
            if name in found:
                raise LoragError(f"{kind} {name!r} registered by both {found[name].plugin} and {_plugin}")
            if not description and not isinstance(factory, str):
                description = (factory.__doc__ or "").strip().split("\n")[0]
            found[name] = Entry(name, factory, description, _plugin)

        impl.function(register=register)
    return found


def graders(pm=None) -> dict[str, Entry]:
    return _collect(_pm(pm).hook.register_graders, "grader")


def tasks(pm=None) -> dict[str, Entry]:
    return _collect(_pm(pm).hook.register_tasks, "task")


def datasets(pm=None) -> dict[str, Entry]:
    return _collect(_pm(pm).hook.register_datasets, "dataset")


def _pm(pm):
    from lorag_harness.plugins import check_plugins, pm as default

    pm = default if pm is None else pm
    check_plugins(pm)  # a plug-in that failed to load is an error here, on first use
    return pm


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"s1:adapters/s1"`` -> ``("s1", "adapters/s1")``."""
    name, sep, arg = spec.partition(":")
    return name.strip(), (arg if sep else None)


def lookup(entries: dict[str, Entry], spec: str, kind: str) -> tuple[Entry, str | None]:
    name, arg = split_spec(spec)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise LoragError(f"unknown {kind} {name!r} (known: {known})")
    return entries[name], arg
