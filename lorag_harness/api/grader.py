"""The typed contract for grader plug-ins (what a plug-in author subclasses).

    from lorag_harness.api.grader import Grader, Judgment, Pair

    class MyGrader(Grader):
        def __init__(self, threshold: float = 0.5):
            self.name = f"mine:{threshold}"
            self.threshold = threshold

        def grade(self, pairs, *, reasons=False, advance=None):
            ...  # one Judgment per pair, in order

``lorag_harness.testing.check_grader(MyGrader())`` checks a grader against this contract.
"""
from __future__ import annotations

import abc
import functools
import importlib.metadata as md
import re
import sys
from typing import Callable, Sequence

from lorag_harness.errors import GraderError
from lorag_harness.api.types import REASON_FIELDS, Judgment, Pair

__all__ = ["Grader", "GraderError", "Judgment", "Pair", "Advance", "REASON_FIELDS", "check_batch", "grade_checked", "distribution_of"]

Advance = Callable[[int], None]  # advance(n): n more pairs done, for progress bars


class Grader(abc.ABC):
    """A relevance grader.

    Subclasses set ``name`` (shown in reports) and implement ``grade``. The default
    ``fingerprint()`` (the judgment-cache key) covers the class, the distribution and version
    that ship it, and the constructor arguments; override it when judgments depend on
    anything else (model files, a calibrated threshold)."""

    name: str = ""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self._init_args = (args, kwargs)  # recorded for the default fingerprint
        return self

    @abc.abstractmethod
    def grade(self, pairs: Sequence[Pair], *, reasons: bool = False, advance: Advance | None = None) -> list[Judgment]:
        """One :class:`Judgment` per pair, in the same order. With ``reasons`` fill ``Judgment.reason``
        (``{"query_topic", "document_topic", "summary"}``); call ``advance(n)`` as pairs are done."""

    def cacheable(self, judgment: Judgment) -> bool:
        """Whether the runner may store ``judgment`` (default: always). Return False for a
        transient failure, such as a request that failed, so that a rerun retries the pair."""
        return True

    def fingerprint(self) -> str:
        from lorag_harness.api.fingerprints import fingerprint

        args, kwargs = getattr(self, "_init_args", ((), {}))
        cls = type(self)
        return fingerprint(kind="plugin", cls=f"{cls.__module__}.{cls.__qualname__}", dist=distribution_of(cls.__module__),
                           source=source_hash(cls.__module__), name=self.name, args=[_plain(a, self) for a in args],
                           kwargs={k: _plain(v, self) for k, v in sorted(kwargs.items())})


def _plain(value, grader):
    """A stable, JSON-able form of a constructor argument for the default fingerprint."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, grader) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, grader) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "fingerprint") and callable(value.fingerprint):
        return f"{type(value).__qualname__}:{value.fingerprint()}"
    text = repr(value)
    if re.search(r" at 0x[0-9a-f]+", text):
        raise GraderError(f"grader {grader.name or type(grader).__name__}: constructor argument of type "
                          f"{type(value).__name__} has no stable form; override fingerprint()")
    return text


def distribution_of(module: str) -> str:
    """``"name version"`` of the installed distribution that provides ``module`` ("unknown" if none)."""
    top = module.split(".")[0]
    try:
        names = _packages_distributions(tuple(sys.path)).get(top, [])
    except Exception:  # broken metadata on the path must not stop a run
        names = []
    for name in names:
        try:
            return f"{name} {md.version(name)}"
        except md.PackageNotFoundError:
            continue
    return "unknown"


@functools.lru_cache(maxsize=4)
def _packages_distributions(path: tuple) -> dict:
    """``importlib.metadata.packages_distributions()`` once per ``sys.path`` (it reads every installed package)."""
    return md.packages_distributions()


def source_hash(module: str) -> str:
    """Hash of the module's source file, so that editing a plug-in (a file loaded through
    LORAG_PLUGINS, an editable install) never reuses judgments of the old code."""
    import hashlib

    path = getattr(sys.modules.get(module), "__file__", None)
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()[:16]
    except (OSError, TypeError):
        return "unknown"


def grade_checked(grader, pairs: Sequence[Pair], *, reasons: bool = False, advance: Advance | None = None) -> list[Judgment]:
    """``grader.grade(pairs)`` checked by :func:`check_batch`; a contract error raised inside the
    plug-in (an invalid ``Judgment``) names the grader too."""
    pairs = list(pairs)
    try:
        out = grader.grade(pairs, reasons=reasons, advance=advance)
    except GraderError as e:
        label = getattr(grader, "name", None) or type(grader).__name__
        if str(e).startswith(f"grader {label}:"):
            raise
        raise GraderError(f"grader {label}: {e}") from e
    return check_batch(grader, pairs, out)


def check_batch(grader, pairs: Sequence[Pair], judgments) -> list[Judgment]:
    """The runner's check of one ``grade()`` result before anything is stored."""
    label = getattr(grader, "name", None) or type(grader).__name__
    if not isinstance(judgments, (list, tuple)):
        raise GraderError(f"grader {label}: grade() returned {type(judgments).__name__}, not a list of Judgment")
    if len(judgments) != len(pairs):
        raise GraderError(f"grader {label}: grade() returned {len(judgments)} judgments for {len(pairs)} pairs")
    for i, j in enumerate(judgments):
        if not isinstance(j, Judgment):
            raise GraderError(f"grader {label}: judgment {i} is a {type(j).__name__}, not a lorag_harness.Judgment")
        j.validate(label)
    return list(judgments)
