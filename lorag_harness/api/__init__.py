"""The contracts: what a plug-in author subclasses or receives.

- :class:`Grader` (``grader.py``): the grader ABC and the batch checks the runner applies;
- :class:`Pair`, :class:`Judgment`, :class:`Dataset`, :class:`Metric` (``types.py``): the data model;
- ``task.py``: what a task returns (:class:`TaskResult`) and the task protocol;
- ``registry.py``: what plug-ins register, looked up by spec (``s1:adapters/s1``);
- ``fingerprints.py``: what a cached judgment depends on;
- ``model_kinds.py``: the kinds of model folder the trainers write, and the grader that loads each.
"""
from lorag_harness.api.grader import Grader, check_batch, grade_checked
from lorag_harness.api.registry import GraderContext
from lorag_harness.api.task import Task, TaskResult
from lorag_harness.api.types import Dataset, Doc, Judgment, Metric, Pair, Query

__all__ = ["Grader", "GraderContext", "Judgment", "Pair", "Dataset", "Doc", "Query", "Metric", "Task", "TaskResult",
           "grade_checked", "check_batch"]
