"""Grading throughput on one machine, in one run (python bench/grading.py [--pairs 200] [--seed-pairs N]).

(a) seed-style loop: one pair at a time, greedy generate of up to 64 tokens, JSON parsed afterwards
(b) batched next-token logits after the prefilled answer, left padding, length-sorted batches
(c) (b) plus a KV cache of the shared prompt prefix
(d) the embedding grader
(b', c') (b) and (c) with bfloat16 matmuls (--quant bf16): speed, and what it costs in decisions
(e) reasons by batched generation, free and constrained (JSON schema, topics from the label set):
    JSON-valid rates side by side
Also: the machine's float32 matmul FLOP/s, the achieved FLOP/s of (c), and a profile of (b): the
share of its time in aten::mm and the rate of those matmuls. Results go to
bench/results.json (key "grading").

(a), (b), (c) and the matmul rate are measured in interleaved rounds: (a) runs over one slice of the
pairs, then (b) and (c) over all of them, then the matmul; so a machine that slows down or speeds up
during the run (here single timings vary by ±20%) weighs on all of them alike. Ratios are of the
totals over all rounds; the per-round ratios give their spread.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import torch
from sklearn.metrics import accuracy_score, roc_auc_score


from lorag_harness.graders.embedding import EmbeddingGrader
from lorag_harness.graders.lm_graders import LMGrader, label_topics
from lorag_harness.graders.lm_scoring import length_sorted_batches
from lorag_harness.graders.prefix_cache import score_with_prefix_cache
from bench.results_file import update
from lorag_harness.backends import prompts
from lorag_harness.data.builtin import orange_loader
from lorag_harness.api.types import Pair
from lorag_harness.backends.output_parsing import parse_output

RESULTS = Path(__file__).with_name("results.json")


def matmul_flops(n: int = 2048, reps: int = 10, trials: int = 5) -> float:
    """Best of ``trials`` timings of float32 n×n matmuls: the machine's limit (single timings vary ±20%)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def profile_mm(fn, mm_flop: float) -> dict:
    """Share of ``fn``'s CPU time spent in aten::mm, and the FLOP/s of those matmuls given their
    FLOP count ``mm_flop`` (the profiler's own FLOP counting records shapes and slows the run ~1.5×)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm_s = sum(e.self_cpu_time_total for e in events if e.key == "aten::mm") / 1e6
    return {"seconds": total / 1e6, "mm_time_fraction": mm_s * 1e6 / total, "mm_flops": mm_flop / mm_s}


def padded_tokens(seqs: list[list[int]], batch_size: int) -> int:
    """Tokens (b) runs, left padding included: rows × the longest row of each length-sorted batch."""
    return sum(len(b) * max(len(seqs[i]) for i in b) for b in length_sorted_batches([len(s) for s in seqs], batch_size))


RELEVANT = re.compile(r'"relevant"\s*:\s*(true|false)')


@torch.inference_mode()
def seed_loop(grader: LMGrader, pairs: list[Pair]) -> tuple[float, list, list]:
    """One pair at a time: generate up to 64 tokens with no prefill, parse the JSON. Also the
    relevant value read from the text where the JSON did not parse (e.g. cut by the budget)."""
    tok, decisions, values = grader.tokenizer, [], []
    start = time.perf_counter()
    for p in pairs:
        ids = torch.tensor([grader.encode(p, "")])  # the prompt, no prefill
        out = grader.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=64,
                                    do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        obj, ok = parse_output(text, need_reason=False)
        decisions.append(obj["relevant"] if ok else None)
        found = RELEVANT.search(text)
        values.append(found.group(1) == "true" if found else None)
    return time.perf_counter() - start, decisions, values


def _valid_rate(judgments, ds) -> dict:
    """JSON valid (schema parsed), and topics from the label set."""
    names = set(label_topics(ds))
    ok = [j.parse_ok for j in judgments]
    in_set = [j.parse_ok and j.reason["query_topic"] in names and j.reason["document_topic"] in names for j in judgments]
    return {"valid": sum(ok) / len(ok), "valid_with_label_topics": sum(in_set) / len(in_set)}


def _accuracy(judgments, pairs) -> float:
    return accuracy_score([p.label for p in pairs], [j.relevant for j in judgments])


def _auc(judgments, pairs) -> float:
    return roc_auc_score([p.label for p in pairs], [j.score for j in judgments])


def rounds_of(items: list, n: int) -> list[list]:
    """``items`` cut into ``n`` nearly equal consecutive slices (none empty)."""
    n = max(1, min(n, len(items)))
    cuts = [round(i * len(items) / n) for i in range(n + 1)]
    return [items[a:b] for a, b in zip(cuts, cuts[1:])]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed-pairs", type=int, default=None, help="pairs for (a) (default: all)")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per generation batch")
    ap.add_argument("--score-batch-size", type=int, default=32, help="rows per scoring batch, (b) and (c)")
    ap.add_argument("--max-doc-tokens", type=int, default=48, help="the demo profile's document budget")
    ap.add_argument("--adapter", default=None, help="adapter for every LM path (default: runs/demo/adapters/s2 if present)")
    ap.add_argument("--reason-pairs", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of (a), (b), (c) and the matmul")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON file whose \"grading\" key is replaced")
    args = ap.parse_args()
    default_adapter = Path("runs/demo/adapters/s2")
    adapter = args.adapter or (str(default_adapter) if (default_adapter / "adapter_config.json").is_file() else None)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    ds = orange_loader("reuters-r8")(None, {"n_eval": args.pairs})
    pairs = ds.eval_pairs[: args.pairs]
    # a RAG-shaped workload too: 10 queries x 20 documents
    rag = [Pair(q.text, d.text, d.topic == q.topic) for q in ds.queries[:10] for d in ds.corpus[:20]]
    # one grader per variant (none is reconfigured while in use); variants share the loaded weights
    g = LMGrader("s2" if adapter else "base", adapter=adapter, batch_size=args.batch_size, prefix_cache=False,
                 score_batch_size=args.score_batch_size, max_doc_tokens=args.max_doc_tokens, precision="fp32")  # (b)
    g.model  # load before timing
    g_c = g.variant(prefix_cache=True)  # (c) through grade(); reasons, free decoding
    g_b16, g_c16 = g.variant(quant="bf16"), g.variant(quant="bf16", prefix_cache=True)  # same weights, bf16 matmuls
    g_cons = g_c.variant(constrained_topics=label_topics(ds))  # reasons under the JSON schema
    flops_machine = matmul_flops()
    n_params = sum(p.numel() for p in g.model.parameters())
    n_embed = g.model.get_input_embeddings().weight.numel()
    results = {"threads": torch.get_num_threads(), "pairs": len(pairs), "matmul_flops": flops_machine,
               "adapter": adapter, "max_doc_tokens": args.max_doc_tokens,
               "params": n_params, "threshold": g.threshold, "non_embedding_params": n_params - n_embed}

    seed_pairs = pairs[: args.seed_pairs or len(pairs)]
    seqs = [g.encode(p, prompts.PREFILL) for p in pairs]
    ids = (g.token_id(" true"), g.token_id(" false"), g.tokenizer.pad_token_id)
    stats: dict = {}
    rounds = rounds_of(seed_pairs, args.rounds)
    t_a = t_b = t_c = 0.0
    dec_a, val_a, per_round = [], [], []
    for chunk in rounds:
        ta, da, va = seed_loop(g, chunk)
        tb, jb = timed(lambda: g.grade(pairs))
        stats.clear()
        tc, sc = timed(lambda: score_with_prefix_cache(g.model, seqs, [p.query for p in pairs], *ids,
                                                       g.score_batch_size, stats=stats))
        flops_machine = max(flops_machine, matmul_flops())
        t_a, t_b, t_c = t_a + ta, t_b + tb, t_c + tc
        dec_a += da
        val_a += va
        ra, rb, rc = len(chunk) / ta, len(pairs) / tb, len(pairs) / tc
        per_round.append({"a_pairs_per_s": ra, "b_pairs_per_s": rb, "c_pairs_per_s": rc,
                          "b_ratio_over_a": rb / ra, "c_ratio_over_a": rc / ra})
    t_b, t_c = t_b / len(rounds), t_c / len(rounds)  # mean time of one pass over all pairs
    results["matmul_flops"] = flops_machine
    # what bounds (b): its matmuls are the projections over every token run, plus the lm_head once per row
    mm_flop = 2 * (n_params - n_embed) * padded_tokens(seqs, g.score_batch_size) + 2 * n_embed * len(pairs)
    b_profile = profile_mm(lambda: g.grade(pairs), mm_flop)
    rag_b, _ = timed(lambda: g.grade(rag))
    rag_stats: dict = {}
    rag_seqs = [g.encode(p, prompts.PREFILL) for p in rag]
    rag_c, _ = timed(lambda: score_with_prefix_cache(g.model, rag_seqs, [p.query for p in rag], *ids, g.score_batch_size,
                                                     stats=rag_stats))
    t_b16, jb16 = timed(lambda: g_b16.grade(pairs))
    t_c16, _ = timed(lambda: g_c16.grade(pairs))
    emb = EmbeddingGrader(train_pairs=ds.train_pairs, topics=ds.topics)
    t_d, _ = timed(lambda: emb.grade(pairs))
    reason_pairs = pairs[: args.reason_pairs]
    t_free, free = timed(lambda: g_c.grade(reason_pairs, reasons=True))
    t_cons, cons = timed(lambda: g_cons.grade(reason_pairs, reasons=True))

    dec_b = [j.relevant for j in jb]
    dec_c = [s >= g.threshold for s in sc]
    # greedy generation picks the likelier of true/false: compare (a) with (b) at P(true) = 0.5
    argmax_b = [j.score >= 0.5 for j in jb]
    parsed = [i for i, d in enumerate(dec_a) if d is not None]
    found = [i for i, v in enumerate(val_a) if v is not None]
    prompt_tokens = sum(len(s) for s in seqs)
    rate_a = len(seed_pairs) / t_a
    results.update({
        "a_seed_generate": {"pairs": len(seed_pairs), "seconds": t_a, "pairs_per_s": rate_a,
                            "parsed": len(parsed), "relevant_value_found": len(found)},
        "b_batched_logits": {"seconds": t_b, "pairs_per_s": len(pairs) / t_b},
        "c_prefix_cache": {"seconds": t_c, "pairs_per_s": len(pairs) / t_c, "tokens_run": stats["tokens"],
                           "prompt_tokens": prompt_tokens},
        "bf16": {"b_pairs_per_s": len(pairs) / t_b16, "c_pairs_per_s": len(pairs) / t_c16,
                 "b_ratio_over_a": len(pairs) / t_b16 / rate_a,
                 "c_ratio_over_a": len(pairs) / t_c16 / rate_a,
                 "decisions_differing_from_b": sum(x.relevant != y for x, y in zip(jb16, dec_b)),
                 "accuracy": _accuracy(jb16, pairs), "roc_auc": _auc(jb16, pairs)},
        "float32_accuracy": _accuracy(jb, pairs), "float32_roc_auc": _auc(jb, pairs),
        "d_embedding": {"seconds": t_d, "pairs_per_s": len(pairs) / t_d},
        "e_reasons": {"pairs": len(reason_pairs),
                      "free": {"json_valid": _valid_rate(free, ds), "pairs_per_s": len(reason_pairs) / t_free},
                      "constrained": {"json_valid": _valid_rate(cons, ds), "pairs_per_s": len(reason_pairs) / t_cons}},
        "rag_10x20": {"b_pairs_per_s": len(rag) / rag_b, "c_pairs_per_s": len(rag) / rag_c,
                      "c_tokens_run": rag_stats["tokens"], "prompt_tokens": sum(len(s) for s in rag_seqs)},
        "rounds": per_round,
        "b_profile": {**b_profile, "mm_fraction_of_matmul": b_profile["mm_flops"] / flops_machine},
        "ratio_b_over_a_per_round": [min(r["b_ratio_over_a"] for r in per_round), max(r["b_ratio_over_a"] for r in per_round)],
        "ratio_b_over_a": len(pairs) / t_b / rate_a,
        "ratio_c_over_a": len(pairs) / t_c / rate_a,
        "c_flops_all_params": 2 * n_params * stats["tokens"] / t_c,
        "c_flops_non_embedding": 2 * (n_params - n_embed) * stats["tokens"] / t_c,
        "b_equals_c": dec_b == dec_c,
        "agreement_with_a_where_parsed": (sum(dec_a[i] == argmax_b[i] for i in parsed) / len(parsed)) if parsed else None,
        "agreement_with_a_where_value_found": (sum(val_a[i] == argmax_b[i] for i in found) / len(found)) if found else None,
    })
    results["c_fraction_of_matmul"] = results["c_flops_all_params"] / flops_machine
    results["c_fraction_of_matmul_non_embedding"] = results["c_flops_non_embedding"] / flops_machine
    update("grading", results, path=args.results)
    for k in ("ratio_b_over_a", "ratio_b_over_a_per_round", "ratio_c_over_a", "c_fraction_of_matmul", "c_fraction_of_matmul_non_embedding",
              "b_equals_c", "float32_accuracy", "float32_roc_auc", "agreement_with_a_where_parsed",
              "agreement_with_a_where_value_found"):
        print(f"{k:40s} {results[k]}")
    for k in ("b_profile", "a_seed_generate", "b_batched_logits", "c_prefix_cache", "bf16", "d_embedding", "rag_10x20", "e_reasons"):
        print(f"{k:40s} {json.dumps({x: round(y, 3) if isinstance(y, float) else y for x, y in results[k].items()})}")
    print(f"{'matmul GFLOP/s':40s} {flops_machine / 1e9:.1f}")


if __name__ == "__main__":
    main()
