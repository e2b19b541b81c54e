"""Throughput of the cross-encoder and classification-head graders beside the LM and embedding
graders, on the pairs of bench/grading.py (Reuters R8 eval pairs), in one run
(python bench/new_graders.py [--pairs 200] [--reranker DIR] [--cls DIR] [--rounds 3]).

Rows: (b) the LM grader's batched true/false scoring (base SmolLM2, or --adapter), its bf16 variant,
the embedding grader, the cross-encoder (float32 and bf16 autocast), the cls head (float32 and bf16).
Without --reranker / --cls an untrained model of the same shape is built (a trained head runs at
the same speed; accuracy is then reported as null). The graders run in interleaved rounds, so a
machine whose speed drifts during the run weighs on all of them alike. Results go to
bench/results.json (key "new_graders")."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from lorag_harness.data.builtin import orange_loader
from bench.results_file import RESULTS, update

KEY = "new_graders"


def untrained_reranker(folder: Path) -> str:
    from sentence_transformers.cross_encoder import CrossEncoder

    from lorag_harness.backends.embedder import resolve_embedder

    CrossEncoder(resolve_embedder(None), num_labels=1, max_length=96).save_pretrained(str(folder))
    return str(folder)


def untrained_cls(folder: Path) -> str:
    from transformers import AutoModelForSequenceClassification

    from lorag_harness.backends.lm import load_tokenizer, resolve_model_path

    tok = load_tokenizer(None)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(None), num_labels=2)
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def quality(judgments, pairs) -> dict:
    from sklearn.metrics import roc_auc_score

    y = [p.label for p in pairs]
    return {"accuracy": float(np.mean([j.relevant == p.label for j, p in zip(judgments, pairs)])),
            "roc_auc": float(roc_auc_score(y, [j.score for j in judgments]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--reranker", default=None, help="trained cross-encoder folder (default: runs/demo/models/reranker)")
    ap.add_argument("--cls", default=None, help="trained cls folder (default: runs/demo/models/cls)")
    ap.add_argument("--adapter", default=None, help="adapter for the LM row (default: none, the prompted base)")
    ap.add_argument("--max-doc-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-lm", action="store_true", help="no LM rows (faster)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    ds = orange_loader("reuters-r8")(None, {"n_eval": args.pairs})
    pairs = ds.eval_pairs[: args.pairs]

    from lorag_harness.graders.cls_head import ClsHeadGrader
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader
    from lorag_harness.graders.embedding import EmbeddingGrader

    tmp = Path(tempfile.mkdtemp(prefix="lorag-bench-"))
    rr = args.reranker or ("runs/demo/models/reranker" if Path("runs/demo/models/reranker/config.json").is_file() else None)
    cl = args.cls or ("runs/demo/models/cls" if Path("runs/demo/models/cls/manifest.json").is_file() else None)
    trained = {"cross-encoder": rr is not None, "cls": cl is not None}
    rr = rr or untrained_reranker(tmp / "reranker")
    cl = cl or untrained_cls(tmp / "cls")
    graders = {"embedding": EmbeddingGrader(train_pairs=ds.train_pairs, topics=ds.topics),
               "cross-encoder": CrossEncoderGrader(rr, bf16=False)}
    graders["cross-encoder bf16"] = CrossEncoderGrader(rr, bf16=True)
    graders["cls"] = ClsHeadGrader(cl, max_doc_tokens=args.max_doc_tokens, bf16=False)
    graders["cls bf16"] = ClsHeadGrader(cl, max_doc_tokens=args.max_doc_tokens, bf16=True)
    if not args.skip_lm:
        from lorag_harness.graders.lm_graders import LMGrader

        lm = LMGrader("s2" if args.adapter else "base", adapter=args.adapter, prefix_cache=False, score_batch_size=32,
                      max_doc_tokens=args.max_doc_tokens, precision="fp32")
        lm.model
        graders["lm (b)"] = lm
        graders["lm (b) bf16"] = lm.variant(quant="bf16")

    from lorag_harness.backends.embedder import clear_vectors

    def run(name):
        clear_vectors()  # the embedder keeps vectors per process: every round encodes from scratch, as a new run does
        start = time.perf_counter()
        out = graders[name].grade(pairs)
        return time.perf_counter() - start, out

    for name in graders:  # warm-up: first-call allocations and lazy loads
        run(name) if name.startswith(("cross", "cls", "embedding")) else graders[name].grade(pairs[:8])
    seconds = {n: 0.0 for n in graders}
    last = {}
    for _ in range(args.rounds):
        for name in graders:
            t, last[name] = run(name)
            seconds[name] += t
    rows = {}
    for name in graders:
        q = quality(last[name], pairs)
        kind = name.split()[0]
        rows[name] = {"pairs_per_s": round(args.rounds * len(pairs) / seconds[name], 2),
                      **({k: round(v, 4) for k, v in q.items()} if trained.get(kind, True) else {"accuracy": None, "roc_auc": None})}
    lm_rate = rows.get("lm (b)", {}).get("pairs_per_s")
    for r in rows.values():
        r["x_lm_b"] = round(r["pairs_per_s"] / lm_rate, 2) if lm_rate else None
    out = {"pairs": len(pairs), "rounds": args.rounds, "max_doc_tokens": args.max_doc_tokens, "threads": torch.get_num_threads(),
           "reranker": rr if trained["cross-encoder"] else "untrained (packaged MiniLM + new head)",
           "cls": cl if trained["cls"] else "untrained (SmolLM2 + new head)", "load_average": os.getloadavg()[0],
           "rows": rows}
    for name, r in rows.items():
        print(f"{name:22s} {r['pairs_per_s']:8.2f} pairs/s  x(b) {r['x_lm_b']}  acc {r['accuracy']}  auc {r['roc_auc']}")
    update(KEY, out, path=args.results)


if __name__ == "__main__":
    main()
