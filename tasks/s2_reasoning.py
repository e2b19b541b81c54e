"""S2 structured reasoning: is the reason valid JSON, complete, on topic, close to the reference?"""
from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np

from lorag_harness.data.topics import topic_matches
from lorag_harness.backends.embedder import embed
from lorag_harness.errors import LoragError
from lorag_harness.api.task import EvalPairsTask, TaskResult, pair_record, pairwise
from lorag_harness.backends.output_parsing import complete_reason, first_json_object
from lorag_harness.evaluation.stats import Metric, bootstrap, mean, mcnemar_exact, wilson


class S2Reasoning(EvalPairsTask):
    """Reasons on a subset of the eval pairs: JSON validity, topics, summary similarity."""

    name = "s2-reasoning"

    def __init__(self, limit: int | None = 32, embedder: str | None = None):
        self.limit, self.embedder = limit, embedder

    def check(self, dataset) -> list[str]:
        pairs = self.pairs(dataset)
        if not pairs:
            raise LoragError(f"task s2-reasoning: dataset {dataset.name!r} has no evaluation pairs")
        with_ref = sum(1 for p in pairs if dataset.references.get(p.pair_id))
        if with_ref == 0:
            return [f"dataset {dataset.name!r} has no reference reasons (pairs without query_topic/document_topic): "
                    "only JSON validity, completeness and relevance agreement are scored; topic accuracy and "
                    "summary similarity are not"]
        if with_ref < len(pairs):
            return [f"topic accuracy and summary similarity are scored on the {with_ref} of {len(pairs)} pairs "
                    "that have a reference reason"]
        return []

    def run(self, dataset, judge) -> TaskResult:
        pairs = self.pairs(dataset)
        judgments = judge(pairs, reasons=True)
        n = len(pairs)
        refs = [dataset.references.get(p.pair_id) for p in pairs]
        reasons = [j.reason if isinstance(j.reason, dict) else {} for j in judgments]
        valid = [first_json_object(j.raw_text)[0] is not None for j in judgments]
        agree = [j.relevant is not None and j.relevant == p.label for p, j in zip(pairs, judgments)]
        metrics = {
            "json_valid": wilson(sum(valid), n),
            "schema_valid": wilson(sum(j.parse_ok for j in judgments), n),
            "relevance_agreement": wilson(sum(agree), n),
            "reason_complete": wilson(sum(complete_reason(r) for r in reasons), n),
            "query_topic_acc": Metric(None),
            "doc_topic_acc": Metric(None),
            "summary_cosine": Metric(None),
            "summary_ratio": Metric(None),
        }
        with_ref = [i for i, r in enumerate(refs) if r]
        if with_ref:
            qt = [topic_matches(reasons[i].get("query_topic"), refs[i]["query_topic"], dataset.topics) for i in with_ref]
            dt = [topic_matches(reasons[i].get("document_topic"), refs[i]["document_topic"], dataset.topics) for i in with_ref]
            metrics["query_topic_acc"] = wilson(sum(qt), len(with_ref))
            metrics["doc_topic_acc"] = wilson(sum(dt), len(with_ref))
            got = [str(reasons[i].get("summary") or "") for i in with_ref]
            want = [refs[i]["summary"] for i in with_ref]
            cos = np.sum(embed(got, self.embedder) * embed(want, self.embedder), axis=1)
            cos = np.where([bool(g.strip()) for g in got], cos, 0.0)  # a missing summary scores 0
            ratio = np.array([SequenceMatcher(None, g.lower(), w.lower()).ratio() for g, w in zip(got, want)])
            metrics["summary_cosine"] = bootstrap(mean, cos)
            metrics["summary_ratio"] = bootstrap(mean, ratio)
        records = [pair_record(p, j) | {"reference": r} for p, j, r in zip(pairs, judgments, refs)]
        return TaskResult(metrics, records, {"json_valid": valid, "correct": agree})

    def compare(self, results):
        return pairwise(results, "json_valid", mcnemar_exact)
