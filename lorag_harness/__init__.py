"""lorag-harness: evaluate RAG relevance graders."""
from .api import Grader
from .errors import GraderError, LoragError
from .hookspecs import hookimpl
from .model import Dataset, Doc, Judgment, Pair, Query

__all__ = ["hookimpl", "Grader", "GraderError", "LoragError", "Dataset", "Doc", "Judgment", "Pair", "Query"]
