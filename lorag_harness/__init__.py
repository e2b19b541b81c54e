"""lorag-harness: evaluate RAG relevance graders."""
from .hookspecs import hookimpl
from .model import Dataset, Doc, Judgment, Pair, Query

__all__ = ["hookimpl", "Dataset", "Doc", "Judgment", "Pair", "Query"]
