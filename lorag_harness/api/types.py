"""Data model shared by graders, tasks and datasets."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

REASON_FIELDS = ("query_topic", "document_topic", "summary")

DIRECTIONS = ("higher", "lower", None)
# reports written before metrics carried a direction: the metrics where lower was better
LEGACY_LOWER_IS_BETTER = frozenset({"parse_failures"})


@dataclass
class Metric:
    """A value with its interval. ``better``: "higher" or "lower" is better, or None (a count,
    a setting: no best in reports); tasks set it, reports read it."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    better: str | None = "higher"

    def __post_init__(self):
        if self.better not in DIRECTIONS:
            raise ValueError(f"Metric.better must be 'higher', 'lower' or None, not {self.better!r}")

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "better": self.better}

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> "Metric":
        """``name`` gives the direction of metrics stored before ``better`` existed."""
        better = d["better"] if "better" in d else ("lower" if name in LEGACY_LOWER_IS_BETTER else "higher")
        return cls(d.get("value"), d.get("low"), d.get("high"), d.get("n"), better)

    def directed(self, better: str | None) -> "Metric":
        """This metric with direction ``better``."""
        from dataclasses import replace

        return replace(self, better=better)

    def plain(self) -> str:
        from rich.text import Text

        return Text.from_markup(str(self)).plain

    def __str__(self) -> str:
        if self.value is None:
            return "–"
        if isinstance(self.value, int) or self.low is None:
            return f"{self.value:g}" if isinstance(self.value, int) else f"{self.value:.3f}"
        return f"{self.value:.3f} [dim]({self.low:.2f}–{self.high:.2f})[/]"


@dataclass(frozen=True)
class Pair:
    """One query–document pair with its ground-truth relevance."""

    query: str
    document: str
    label: bool
    query_topic: str | None = None
    document_topic: str | None = None
    pair_id: str = ""
    provenance: str = field(default="", compare=False)  # how the pair was drawn (judged, rank window, title, …)

    def __post_init__(self):
        if not self.pair_id:
            object.__setattr__(self, "pair_id", self.content_hash()[:16])

    def content_hash(self) -> str:
        """Hash of what a grader sees (query and document), used as a cache key."""
        return hashlib.sha256(f"{self.query}\x00{self.document}".encode()).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Judgment:
    """A grader's verdict on one pair, checked on construction.

    ``relevant`` is a bool, or None when the grader could not decide (counted as a parse
    failure); ``score`` is P(relevant) in [0, 1] where available (a finite number otherwise:
    rankers may return any real score); ``reason`` a dict (the output schema's reason)."""

    relevant: bool | None
    score: float | None = None  # P(relevant) where available
    reason: dict | None = None
    raw_text: str = ""
    parse_ok: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self, grader: str | None = None) -> None:
        """Normalise numpy scalars; raise GraderError on a value of the wrong type."""
        from lorag_harness.errors import GraderError

        who = f"grader {grader}: " if grader else ""
        if self.relevant is not None and type(self.relevant) is not bool:
            if type(self.relevant).__module__ == "numpy" and type(self.relevant).__name__ in ("bool", "bool_"):
                self.relevant = bool(self.relevant)
            else:
                raise GraderError(f"{who}Judgment.relevant must be True, False or None, not {self.relevant!r}")
        if self.score is not None:
            if isinstance(self.score, (bool, str)) or not hasattr(self.score, "__float__"):
                raise GraderError(f"{who}Judgment.score must be a number or None, not {self.score!r}")
            self.score = float(self.score)
            if not math.isfinite(self.score):
                raise GraderError(f"{who}Judgment.score must be finite, not {self.score!r}")
        if self.reason is not None and not isinstance(self.reason, dict):
            raise GraderError(f"{who}Judgment.reason must be a dict or None, not {type(self.reason).__name__}")
        if not isinstance(self.raw_text, str):
            raise GraderError(f"{who}Judgment.raw_text must be a str, not {type(self.raw_text).__name__}")
        if type(self.parse_ok) is not bool:
            raise GraderError(f"{who}Judgment.parse_ok must be True or False, not {self.parse_ok!r}")
        if self.relevant is None:
            self.parse_ok = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Judgment":
        return cls(**{k: d.get(k) for k in ("relevant", "score", "reason", "raw_text", "parse_ok")})

    def as_output(self) -> dict:
        """The grader output schema: {"relevant": ..., "reason": {...}}."""
        return {"relevant": self.relevant, "reason": self.reason}


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    topic: str


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str
    topic: str | None = None


@dataclass
class Dataset:
    """What a dataset plugin returns: pairs for grading, a corpus for retrieval."""

    name: str
    train_pairs: list[Pair]
    eval_pairs: list[Pair]
    corpus: list[Doc] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # query_id -> doc_id -> grade
    topics: dict[str, str] = field(default_factory=dict)  # label -> readable name
    references: dict[str, dict] = field(default_factory=dict)  # pair_id -> reference reason
    notes: list[str] = field(default_factory=list)  # what loading changed (duplicates removed, …), shown to the user

    def fingerprint(self) -> str:
        return pairs_hash(self.train_pairs + self.eval_pairs)


def pairs_hash(pairs) -> str:
    """Hash of labelled pairs: what a grader sees and the labels."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(p.content_hash().encode())
        h.update(b"1" if p.label else b"0")
    return h.hexdigest()[:16]


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)
