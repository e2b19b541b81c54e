"""lorag-harness: evaluate RAG relevance graders."""
from lorag_harness.api.grader import Grader
from lorag_harness.errors import GraderError, LoragError
from lorag_harness.hookspecs import hookimpl
from lorag_harness.api.types import Dataset, Doc, Judgment, Pair, Query

__all__ = ["hookimpl", "Grader", "GraderError", "LoragError", "Dataset", "Doc", "Judgment", "Pair", "Query"]
