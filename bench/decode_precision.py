"""LM grading in float32 and bfloat16 autocast on this CPU: scoring 200 Reuters R8 pairs (batched
forward passes) and decoding 8 reasons (one token for each of 8 rows a step), interleaved rounds on
one thread, in CPU seconds; beside the precision probe's two shapes. Why LM graders decode in the
precision the decoding-shaped probe picks (lorag_harness/backends/precision.py).

    .venv/bin/python -m bench.decode_precision [--rounds 2] [--record]"""
from __future__ import annotations

import argparse
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="Store the run in bench/results.json (grading_precision)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from lorag_harness.backends import precision
    from lorag_harness.evaluation.runner import load_dataset
    from lorag_harness.graders.lm_graders import LMGrader

    pairs = load_dataset("reuters-r8", {"n_train": 64, "n_eval": 200, "seed": 13, "positive_rate": 0.5}).eval_pairs
    graders = {p: LMGrader("base", max_doc_tokens=48, precision=p) for p in ("fp32", "bf16")}
    for g in graders.values():
        g.grade(pairs[:4])  # loads, warms up
    score = {p: [] for p in graders}
    decode = {p: [] for p in graders}
    for _ in range(args.rounds):
        for p, g in graders.items():
            start = time.process_time()
            g.grade(pairs)
            score[p].append(round(time.process_time() - start, 1))
            start = time.process_time()
            g.grade(pairs[:8], reasons=True)  # scoring 8 pairs, then decoding their reasons
            decode[p].append(round(time.process_time() - start, 1))
    probes = {name: precision.measure(shape) for name, shape in (("batch", precision.PROBE_SHAPE),
                                                                 ("decode", precision.DECODE_SHAPE))}
    row = {"score_200_pairs_cpu_s": score, "decode_8_reasons_cpu_s": decode,
           "probe_ratio_bf16_over_fp32": {k: round(v["ratio"], 3) for k, v in probes.items()},
           "machine": precision.machine()}
    print(row)
    if args.record:
        from bench.results_file import update

        update("grading_precision", row, precision="fp32 and bf16", command="python -m bench.decode_precision --record")


if __name__ == "__main__":
    main()
