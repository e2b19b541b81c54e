"""A recipe check for the no-judgment embedder on a BEIR collection (default: CISI): one variant of
``lorag train embedding`` on synthetic pairs only, scored on the collection's query-disjoint training
queries (dev) and on its evaluation queries (eval), BM25 top 100 reranked by cosine and fused with
BM25 (RRF); per-query nDCG@10 kept for paired tests.

    python -m bench.recipe_checks NAME [key=value ...]   # EmbeddingConfig overrides
    python -m bench.recipe_checks untrained              # the packaged embedder, no training
    python -m bench.recipe_checks path:DIR               # a trained folder
    python -m bench.recipe_checks gen_all pairs=FILE [only=generate]   # pairs of `lorag pairs`

Rows are appended to --out (JSON lines); bench/results.json "domain_adaptation_recipe_checks" has the
runs and what they showed."""
import argparse
import json
import time

import numpy as np
from pathlib import Path
from bench.domain_adaptation import MEASURES, cosine_rankings, encode, judged_candidates, steps_printer
from bench.s1_datasets import coerce
from lorag_harness.data.beir import load_beir
from lorag_harness.api.types import Dataset
from lorag_harness.retrieval import metrics as ranking
from lorag_harness.data.synthetic import query_kind
from lorag_harness.retrieval.fusion import rrf
from lorag_harness.trainers.embedding_train import EmbeddingConfig, train_embedding
from lorag_harness.trainers.recipe import recipe_pairs
from sentence_transformers import SentenceTransformer
from lorag_harness.backends.embedder import resolve_embedder

ROOT = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("name", help="untrained, path:DIR, or a name for the variant trained now")
ap.add_argument("set", nargs="*", help="EmbeddingConfig overrides key=value; pairs=FILE, only=KIND[,KIND]")
ap.add_argument("--data", default="/work/shared/data/cisi")
ap.add_argument("--out", default=str(ROOT / "runs" / "recipe_checks.jsonl"))
args = ap.parse_args()
OUT, data = args.out, args.data
name, sets = args.name, dict(kv.split("=", 1) for kv in args.set)
ds = load_beir(data, {"seed": 13})
out = {"name": name, "overrides": dict(sets)}
t0 = time.perf_counter(); c0 = time.process_time()
if name == "untrained":
    folder = resolve_embedder(None)
elif name.startswith("path:"):
    folder = name[5:]
else:
    folder = str(ROOT / "runs" / "recipe_checks" / name)
    pairs_file, only = sets.pop("pairs", None), sets.pop("only", None)
    pairs = recipe_pairs("synthetic", corpus=f"beir:{data}", pairs_file=pairs_file, dataset=ds, seed=13)
    if only:
        pairs = [x for x in pairs if query_kind(x.pair_id) in only.split(",")]
    from collections import Counter
    print("pairs", len(pairs), Counter(x.provenance for x in pairs), flush=True)
    cfg = EmbeddingConfig(out=folder, seed=13, force=True, **{k: coerce(v) for k, v in sets.items()})
    m = train_embedding(cfg, Dataset(f"{ds.name} [synthetic]", pairs, []), steps_printer(name))
    out["train"] = {"steps": m["metrics"]["steps"], "seconds": m["metrics"]["seconds"], "wall_s": round(time.perf_counter() - t0, 1),
                    "cpu_s": round(time.process_time() - c0, 1), "loss": [m["metrics"]["first_loss"], m["metrics"]["final_loss"]], "machine": m["machine"]}
model = SentenceTransformer(str(folder), device="cpu")
docs = encode(model, [d.text for d in ds.corpus])  # once, for both query sets
for split, qrels in {"dev": ds.train_qrels, "eval": ds.qrels}.items():
    qs, qr, cands = judged_candidates(ds, qrels)
    rerank, _ = cosine_rankings(model, ds, qs, cands, docs)
    for sysname, rk in (("bm25", cands), ("rerank", rerank), ("rrf", {q: rrf(r, cands[q]) for q, r in rerank.items()})):
        v = ranking.per_query(MEASURES, qr, rk)
        out[f"{split}_{sysname}"] = {m: round(float(np.mean(list(x.values()))), 4) for m, x in v.items()}
        out[f"{split}_{sysname}_perq"] = v["ndcg@10"]
print(json.dumps({k: v for k, v in out.items() if not k.endswith("perq")}))
Path(OUT).parent.mkdir(parents=True, exist_ok=True)
with open(OUT, "a") as f:
    f.write(json.dumps(out) + "\n")
