"""Built-in tasks, registered through the same hook as third-party ones.

This folder is the ``lorag_harness.tasks`` package (mapped in pyproject.toml). Each task is registered by
name as ``"module:Class"`` and imported only when used. A new built-in task: a module here with a class
following :class:`lorag_harness.api.Task`, and one line below.
"""
from lorag_harness.hookspecs import hookimpl

TASKS = {
    "s1-relevance": ("s1_relevance:S1Relevance", "Relevance decisions on the eval pairs: accuracy, precision, recall, "
                     "F1, ROC-AUC, average precision."),
    "s2-reasoning": ("s2_reasoning:S2Reasoning",
                     "Reasons on a subset of the eval pairs: JSON validity, topics, summary similarity."),
    "rag-p5": ("rag_p5:RagP5", "Retrieve top-k by embedding, let the grader keep and re-rank, P@5 against qrels."),
    "rerank": ("rerank:Rerank",
               "First stage (bm25 or dense) top k, reranked by each grader, scored against human qrels."),
    "judge-agreement": ("judge_agreement:JudgeAgreement", "Graders' decisions against human labels (kappa, accuracy, "
                        "confusion matrix) and Kendall tau of system rankings."),
}


@hookimpl
def register_tasks(register):
    for name, (target, description) in TASKS.items():
        register(name, f"{__name__}.{target}", description)
