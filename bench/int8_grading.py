"""Dynamic int8 linear layers (torch's quantize_dynamic, per-channel weights) for the LM graders: ROC-AUC
and time on the demo's 200 Reuters R8 evaluation pairs against float32, for trained adapters, with the
layers that stay float32 varied. A lever tried for issue 22 (grading on slow AVX2 CPUs); not in the
harness because it costs ranking quality (results in bench/results.json, int8_grading).

    .venv/bin/python -m bench.int8_grading runs/demo/adapters/s1 runs/demo/adapters/s2 [--name NAME] [--record]"""
from __future__ import annotations

import argparse
import copy
import time
import warnings

KEPT_FLOAT = (("lm_head",), ("lm_head", "down_proj"), ("lm_head", "down_proj", "o_proj"),
              ("lm_head", "q_proj", "k_proj", "v_proj", "o_proj"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+", help="adapter folders (lorag demo's runs/demo/adapters/s1, s2)")
    ap.add_argument("--name", default="run", help="the row's name in bench/results.json")
    ap.add_argument("--record", action="store_true", help="Store the run in bench/results.json (int8_grading)")
    args = ap.parse_args(argv)
    import torch
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from lorag_harness.evaluation.runner import load_dataset
    from lorag_harness.graders.lm_graders import LMGrader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    pairs = load_dataset("reuters-r8", {"n_train": 1600, "n_eval": 200, "n_queries": 10, "seed": 13,
                                        "positive_rate": 0.5}).eval_pairs
    labels = [p.label for p in pairs]

    def timed(grader):
        start = time.perf_counter()
        scores = [j.score for j in grader.grade(pairs)]
        return scores, round(time.perf_counter() - start, 1)

    rows = {}
    for adapter in args.adapters:
        grader = LMGrader("bench", adapter=adapter, max_doc_tokens=48, precision="fp32")
        grader.grade(pairs[:8])  # loads the model and the tokenizer, warms up: not timed
        exact, seconds = timed(grader)
        row = {"fp32": {"roc_auc": round(roc_auc_score(labels, exact), 4), "wall_s": seconds}, "int8": []}
        float_model = grader.model
        for kept in KEPT_FLOAT:
            model = copy.deepcopy(float_model)
            spec = {n: per_channel_dynamic_qconfig for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and n.split(".")[-1] not in kept}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                grader._model = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
                grader.grade(pairs[:8])  # warm-up, as for float32
                scores, seconds = timed(grader)
            row["int8"].append({"kept_float32": list(kept), "roc_auc": round(roc_auc_score(labels, scores), 4),
                                "wall_s": seconds, "spearman_with_fp32": round(float(spearmanr(exact, scores)[0]), 3)})
            print(adapter, kept, row["int8"][-1], flush=True)
        print(adapter, "fp32", row["fp32"], flush=True)
        rows[adapter] = row
    if args.record:
        from lorag_harness.backends.precision import machine

        from .results_file import update

        def change(results):
            results[args.name] = {"adapters": rows, "machine": machine("fp32 and int8"), "pairs": len(pairs)}

        update("int8_grading", change=change, precision="fp32 and int8")


if __name__ == "__main__":
    main()
