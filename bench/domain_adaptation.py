"""Domain adaptation on a BEIR collection (default: CISI): does a grader trained on the user's own
corpus beat BM25 and the untrained embedder on human judgments?

    python -m bench.domain_adaptation                       # BM25, dense, untrained and trained embedders
    python -m bench.domain_adaptation --sources synthetic   # only the no-judgment variant
    python -m bench.domain_adaptation --kinds embedding,reranker

Rows: the BM25 first stage (top 100), the dense first stage (the untrained embedder, top 100), the
untrained embedder reranking BM25@100, and the embedder fine-tuned by ``lorag train embedding``
(the recipe's defaults, never tuned per collection) on pairs from each ``--pairs-from`` source:
synthetic (title and inverse-cloze pseudo-queries from the corpus, rank-window negatives: no
judgment used), qrels (the query-disjoint 20% training queries), both. Evaluation: the other judged
queries. nDCG@10, MRR@10, MAP@100 (ir-measures); paired randomization tests on per-query nDCG@10
against BM25 and against the untrained embedder. Reranking orders BM25's candidates by cosine
(ties: BM25 order), the order the embedding grader gives when its calibration slope is positive;
the corpus is encoded once per model. Each reranking also gets an RRF row: reciprocal rank fusion
(k=60) of its order with BM25's (``lorag bench -t rerank --fusion rrf``). ``--kinds reranker`` adds
the cross-encoder (``lorag train reranker``, the ``--corpus`` recipe's row cap) trained on the same
pairs; ``--kinds distilled`` the cross-encoder distilled (``--teacher``, MarginMSE) from the embedder
trained on the same pairs (trained first if missing): with ``synthetic``, no judgment is used by the
teacher or the student. Training wall time and CPU seconds are recorded with the machine.
``--retest`` recomputes the paired tests of the saved rows from MODELS/per_query.json (no model runs).
Results: bench/results.json under "domain_adaptation" (``--all-queries``: "domain_adaptation_all_queries")."""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from lorag_harness.retrieval import metrics as ranking
from lorag_harness.retrieval import first_stage as retrieval
from lorag_harness.retrieval.fusion import rrf
from lorag_harness.data.beir import load_beir
from lorag_harness.data.synthetic import query_kind
from lorag_harness.api.types import Dataset
from lorag_harness.evaluation.stats import paired_randomization
from lorag_harness.backends.precision import machine
from lorag_harness.trainers.embedding_train import EmbeddingConfig, train_embedding
from lorag_harness.trainers.recipe import RERANKER_ROWS, SOURCES, TEACHER_WINDOW, recipe_pairs
from lorag_harness.trainers.rerank_train import RerankConfig, config_key, train_reranker
from bench.results_file import update_rows

KINDS = ("embedding", "reranker", "distilled")
MEASURES = {"ndcg@10": ranking.STANDARD["ndcg@10"], "mrr@10": ranking.STANDARD["mrr@10"], "map@100": ranking.STANDARD["map@100"]}


def encode(model, texts):
    return model.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


def judged_candidates(ds, qrels: dict):
    """The queries ``qrels`` judges some document relevant for, their qrels, and BM25's top 100 for each."""
    queries = [q for q in ds.queries if any(g > 0 for g in qrels.get(q.query_id, {}).values())]
    hits = retrieval.retrieve("bm25", ds, queries, 100)
    return queries, {q.query_id: qrels[q.query_id] for q in queries}, {q: [d for d, _ in row] for q, row in hits.items()}


def cosine_rankings(model, ds, queries, cands, corpus_vecs=None):
    """BM25's candidates by cosine, ties in BM25 order; and the model's own dense top 100."""
    docs = corpus_vecs if corpus_vecs is not None else encode(model, [d.text for d in ds.corpus])
    row = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    qv = encode(model, [q.text for q in queries])
    rerank, dense = {}, {}
    for q, v in zip(queries, qv):
        c = cands[q.query_id]
        s = docs[[row[d] for d in c]] @ v
        rerank[q.query_id] = [c[i] for i in np.argsort(-s, kind="stable")]
        top = retrieval.top_k((docs @ v).astype(np.float64), 100)
        dense[q.query_id] = [ds.corpus[i].doc_id for i, _ in top]
    return rerank, dense


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/cisi")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--sources", default="synthetic,qrels,both")
    ap.add_argument("--kinds", default="embedding", help=f"trained graders: {', '.join(KINDS)} (comma-separated)")
    ap.add_argument("--pairs", help="synthetic pairs written by `lorag pairs` (default: title and inverse-cloze pairs "
                                    "built from the corpus); rows and model folders are named by their query kinds; "
                                    "--kinds distilled still draws the student's negatives from corpus-built pairs")
    ap.add_argument("--models", default=str(ROOT / "runs" / "domain_adaptation"), help="trained models (reused when current)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--table", action="store_true", help="print the markdown table of the saved results and exit")
    ap.add_argument("--retest", action="store_true",
                    help="recompute the saved rows' paired tests from MODELS/per_query.json and exit")
    ap.add_argument("--all-queries", action="store_true",
                    help="evaluate on every judged query, the training share included (more power); only with "
                         "--sources synthetic, which uses no judgment; results under domain_adaptation_all_queries")
    ap.add_argument("--skip-baselines", action="store_true",
                    help="reuse the baseline rows' per-query values saved by an earlier run (MODELS/per_query.json)")
    args = ap.parse_args()
    for option, given, allowed in (("--sources", args.sources, SOURCES), ("--kinds", args.kinds, KINDS)):
        unknown = [v for v in given.split(",") if v and v not in allowed]
        if unknown:  # before any encoding or training
            ap.error(f"{option}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    if args.all_queries and not (args.table or args.retest) and set(args.sources.split(",")) - {"synthetic", ""}:
        ap.error("--all-queries evaluates on the training queries too: only --sources synthetic can use it")
    section = "domain_adaptation_all_queries" if args.all_queries else "domain_adaptation"
    saved = Path(args.models) / ("per_query_all.json" if args.all_queries else "per_query.json")
    if args.table or args.retest:
        stored = json.loads(Path(args.results).read_text()) if Path(args.results).is_file() else {}
        if section not in stored or (args.retest and not saved.is_file()):
            ap.error(f"no saved {section} results in {args.results} and {saved}: run the bench first")
    if args.table:
        print(table(stored[section]["results"]))
        return
    if args.retest:
        retest(saved, args.results, section)
        return
    from sentence_transformers import SentenceTransformer

    from lorag_harness.backends.embedder import resolve_embedder

    ds = load_beir(args.data, {"seed": args.seed})
    queries, qrels, cands = judged_candidates(ds, {**ds.qrels, **ds.train_qrels} if args.all_queries else ds.qrels)
    out = {"dataset": ds.name, "directory": args.data, "evaluation_queries": len(queries),
           "training_queries": len(ds.train_qrels), "evaluated_on_training_queries": args.all_queries,
           "train_source": ds.train_source, "seed": args.seed,
           "k": 100, "recipe": {k: v for k, v in vars(EmbeddingConfig(out="")).items() if k != "out"},
           "machine": machine("fp32"), "rows": []}
    per_query = json.loads(saved.read_text()) if args.skip_baselines and saved.is_file() else {}

    def fused(system, rankings, **extra):
        row(system, rankings, **extra)
        row(system.replace(" reranking ", " + RRF with "), {q: rrf(r, cands[q]) for q, r in rankings.items()})

    def row(system, rankings, **extra):
        values = ranking.per_query(MEASURES, qrels, rankings)
        per_query[system] = values
        saved.parent.mkdir(parents=True, exist_ok=True)
        on_disk = json.loads(saved.read_text()) if saved.is_file() else {}
        saved.write_text(json.dumps(on_disk | {system: values}))
        ids = [q.query_id for q in queries]
        r = mean_row(system, values, ids) | extra | paired_tests(system, per_query, ids)
        out["rows"].append(r)
        print(json.dumps(r), flush=True)
        update_rows(section, out, args.results)

    row("BM25@100", cands)
    if not (args.skip_baselines and {"untrained embedding reranking BM25@100", "untrained embedding + RRF with BM25@100"} <= set(per_query)):
        base = SentenceTransformer(resolve_embedder(None), device="cpu")
        start = time.perf_counter()
        rerank, dense = cosine_rankings(base, ds, queries, cands)
        enc_s = time.perf_counter() - start
        row("dense@100 (untrained embedding)", dense)
        fused("untrained embedding reranking BM25@100", rerank, encode_seconds=round(enc_s, 1))
    kinds = [k for k in args.kinds.split(",") if k]
    for source in [s for s in args.sources.split(",") if s]:
        from_file = args.pairs if source != "qrels" else None
        pairs = recipe_pairs(source, corpus=f"beir:{args.data}", pairs_file=from_file, dataset=ds, seed=args.seed)
        label = source  # rows and model folders; with a pairs file e.g. "synthetic (generate, ict, title)"
        if from_file:
            made = sorted({query_kind(x.pair_id) for x in pairs if not x.pair_id.startswith("train:")})
            label = f"{source} ({', '.join(made)})"
        data = Dataset(f"{ds.name} [{label}]", pairs, [])
        slug = re.sub(r"[^a-z0-9]+", "-", label).strip("-")
        if "embedding" in kinds:
            folder = Path(args.models) / slug
            cfg = EmbeddingConfig(out=str(folder), seed=args.seed, force=True)  # the bench owns its folders
            manifest = trained(folder, cfg, pairs, lambda: train_embedding(cfg, data, steps_printer(label)))
            model = SentenceTransformer(str(folder), device="cpu")
            rerank, dense = cosine_rankings(model, ds, queries, cands)
            fused(f"embedding trained on {label} pairs reranking BM25@100", rerank, training=training(manifest, pairs))
            row(f"dense@100 (embedding trained on {label} pairs)", dense)
        if "reranker" in kinds:
            folder = Path(args.models) / f"reranker-{slug}"
            cfg = RerankConfig(out=str(folder), seed=args.seed, max_rows=RERANKER_ROWS["bce"], force=True)
            manifest = trained(folder, cfg, pairs, lambda: train_reranker(cfg, data, steps_printer(f"reranker {label}")))
            fused(f"cross-encoder trained on {label} pairs reranking BM25@100",
                  cross_encoder_rankings(str(folder), ds, queries, cands), training=training(manifest, pairs))
        if "distilled" in kinds:
            teacher = Path(args.models) / slug
            ecfg = EmbeddingConfig(out=str(teacher), seed=args.seed, force=True)
            trained(teacher, ecfg, pairs, lambda: train_embedding(ecfg, data, steps_printer(label)))
            lo, hi = TEACHER_WINDOW  # the student's synthetic negatives: lorag train reranker --teacher's
            hard = recipe_pairs(source, corpus=f"beir:{args.data}", pairs_file=None, dataset=ds, seed=args.seed,
                                window=TEACHER_WINDOW)
            folder = Path(args.models) / f"distilled-{slug}-ranks-{lo + 1}-{hi}"
            cfg = RerankConfig(out=str(folder), seed=args.seed, loss="margin-mse", teacher=f"embedding:{teacher}",
                               max_rows=RERANKER_ROWS["margin-mse"], force=True)
            hard_data = Dataset(f"{ds.name} [{label}, negatives: BM25 ranks {lo + 1}-{hi}]", hard, [])
            student = folder / "manifest.json"  # its key names the teacher's folder, not its weights:
            if student.is_file() and (teacher / "manifest.json").stat().st_mtime > student.stat().st_mtime:
                student.unlink()  # a teacher trained since the student learnt from it: train the student again
            manifest = trained(folder, cfg, hard, lambda: train_reranker(cfg, hard_data, steps_printer(f"distilled {label}")))
            fused(f"cross-encoder distilled from the embedding trained on {label} pairs "
                  f"(negatives from BM25 ranks {lo + 1}-{hi}) reranking BM25@100",
                  cross_encoder_rankings(str(folder), ds, queries, cands), training=training(manifest, hard))


UNTRAINED = "untrained embedding reranking BM25@100"


def paired_tests(system: str, per_query: dict, queries: list[str]) -> dict:
    """Paired randomization on per-query nDCG@10: against BM25; trained rows also against the untrained
    embedder (fused rows against the fused one) and fused trained rows against its plain reranking."""
    fused = " + RRF with " in system
    others = [("BM25@100", "vs_bm25")]
    if " trained on " in system:
        others.append(("untrained embedding + RRF with BM25@100" if fused else UNTRAINED, "vs_untrained"))
        if fused:
            others.append((UNTRAINED, "vs_untrained_rerank"))
    return {key: ndcg_test(per_query, system, other, queries) for other, key in others
            if other in per_query and other != system}


def ndcg_test(per_query: dict, system: str, other: str, queries: list[str]) -> dict:
    """Paired randomization of ``system`` against ``other`` on per-query nDCG@10: mean difference and p."""
    t = paired_randomization([per_query[system]["ndcg@10"][q] for q in queries],
                             [per_query[other]["ndcg@10"][q] for q in queries])
    return {"mean_diff_ndcg@10": round(t["mean_diff"], 4), "p_value": round(t["p_value"], 4)}


def mean_row(system: str, values: dict, queries: list[str]) -> dict:
    """A results row: each measure's mean over ``queries``."""
    return {"system": system, **{m: round(float(np.mean([v[q] for q in queries])), 4) for m, v in values.items()}}


def retest(saved: Path, results: str, section: str = "domain_adaptation") -> None:
    """The saved rows' paired tests again, from their per-query values (rows without them are kept as they are)."""
    from bench.results_file import update

    per_query = json.loads(saved.read_text())
    queries = list(per_query["BM25@100"]["ndcg@10"])

    def change(current: dict) -> None:
        for r in current.get("rows", []):
            if r["system"] in per_query:
                r.update(paired_tests(r["system"], per_query, queries))
                print(json.dumps({k: v for k, v in r.items() if k != "training"}), flush=True)

    update(section, change=change, path=results)


def steps_printer(what: str):
    return lambda s, t, l: print(f"  {what}: step {s}/{t} loss {l:.3f}", flush=True) if s % 10 == 0 else None


def trained(folder: Path, cfg, pairs, train) -> dict:
    """The model's manifest, trained now unless the folder holds this very recipe on these pairs."""
    manifest_file = folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    return manifest if manifest.get("key") == config_key(cfg, pairs) else train()


def training(manifest: dict, pairs) -> dict:
    from collections import Counter

    m = manifest["metrics"]
    return {"pairs": dict(Counter(p.provenance or "unknown" for p in pairs)), "rows": m["rows"], "steps": m["steps"], "seconds": m["seconds"],
            **({"cpu_seconds": m["cpu_seconds"]} if "cpu_seconds" in m else {}),
            **({"teacher": manifest["teacher"]} if manifest.get("teacher") else {}),
            "tuned_share": manifest.get("hyper", {}).get("tuned_share", 1.0),  # models saved before the option: as trained
            "loss": [round(m["first_loss"], 3), round(m["final_loss"], 3)], "machine": manifest["machine"]}


def cross_encoder_rankings(folder: str, ds, queries, cands):
    """BM25's candidates by the cross-encoder's score, ties in BM25 order."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(folder, device="cpu", activation_fn=torch.nn.Identity())  # logits: no sigmoid ties
    text = {d.doc_id: d.text for d in ds.corpus}
    out = {}
    for q in queries:
        c = cands[q.query_id]
        s = np.asarray(model.predict([(q.text, text[d]) for d in c], batch_size=64, show_progress_bar=False))
        out[q.query_id] = [c[i] for i in np.argsort(-s, kind="stable")]
    return out


def table(result: dict) -> str:
    """The rows as a markdown table: metrics, the two paired tests, training time."""
    def test(r, key):
        t = r.get(key)
        p = f"p {t['p_value']:.3f}" if t and t["p_value"] >= 0.001 else "p < 0.001"
        return f"{t['mean_diff_ndcg@10']:+.3f} ({p})" if t else ""

    lines = ["| system | nDCG@10 | MRR@10 | MAP@100 | Δ nDCG@10 vs BM25 | Δ vs untrained embedding "
             "| Δ vs untrained embedding reranking (no RRF) | training |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(result["rows"], key=_place):
        tr = r.get("training")
        load = (tr or {}).get("machine", {}).get("load_average")
        load = load[0] if isinstance(load, list) else load
        when = ""
        if tr:
            cpu = f", {tr['cpu_seconds']:.0f} CPU-s" if "cpu_seconds" in tr else ""
            teacher = (f"; teacher {tr['teacher']['seconds']:.0f} s, {tr['teacher']['cpu_seconds']:.0f} CPU-s"
                       if tr.get("teacher") else "")
            when = f"{tr['steps']} steps, {tr['rows']} rows, {tr['seconds']:.0f} s{cpu} (load {load:.1f}){teacher}"
        lines.append(f"| {r['system']} | {r['ndcg@10']:.3f} | {r['mrr@10']:.3f} | {r['map@100']:.3f} | {test(r, 'vs_bm25')} "
                     f"| {test(r, 'vs_untrained') if ' trained on ' in r['system'] else ''} | {test(r, 'vs_untrained_rerank')} "
                     f"| {when} |")
    return "\n".join(lines)


def _place(r: dict) -> tuple:
    """BM25, the untrained rows, then each source's trained rows (embedding before cross-encoder)."""
    s = r["system"]
    source = next((i for i, n in enumerate(("synthetic", "qrels", "both"), 1) if f" on {n} " in s), 0)
    return (source, s != "BM25@100", "cross-encoder" in s, "distilled" in s, "dense@" in s, "RRF" in s)


if __name__ == "__main__":
    main()
