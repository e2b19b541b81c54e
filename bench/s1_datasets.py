"""S1 across datasets: the default profile on R8, R52, 20 Newsgroups and CISI pairs, with base and
embedding graders beside it on the same held-out evaluation pairs; and short training experiments
(validation AUC vs steps and wall time) that chose the profile.

    nice -n 10 .venv/bin/python bench/s1_datasets.py table [--datasets r8,r52,20ng,cisi] [--time-budget 10m]
    nice -n 10 .venv/bin/python bench/s1_datasets.py experiment --dataset 20ng NAME objective=binary steps=100 ...

Results go to bench/results.json under "s1_datasets" (read-modify-write of that key only)."""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path


from lorag_harness.api.types import Dataset, Pair
from bench.results_file import RESULTS, update

KEY = "s1_datasets"
CISI = Path(os.environ.get("LORAG_CISI", Path(__file__).resolve().parents[2] / "shared" / "data" / "cisi"))
ORANGE = {"r8": "reuters-r8", "r52": "reuters-r52", "20ng": "20newsgroups"}


def cisi_pairs(folder: Path, n_train: int, n_eval: int, seed: int) -> Dataset:
    """Pairs from CISI's human qrels: judged-relevant documents are positives, random unjudged documents
    of the same query negatives; queries split in halves, so evaluation queries are never trained on."""
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[str(row["_id"])] = " ".join(x for x in (row.get("title"), row.get("text")) if x).strip()
    queries = {str((r := json.loads(line))["_id"]): r["text"] for line in
               (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()}
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        if int(s) > 0:
            qrels.setdefault(q, set()).add(d)
    rng = random.Random(seed)
    qids = sorted(qrels, key=int)
    rng.shuffle(qids)
    docs = sorted(corpus)

    def pairs(qs, n, tag):
        pos = [(q, d) for q in qs for d in sorted(qrels[q])]
        pos = rng.sample(pos, min(n // 2, len(pos)))
        out = []
        for i, (q, d) in enumerate(pos):
            neg = rng.choice([x for x in docs if x not in qrels[q]])
            out.append(Pair(queries[q], corpus[d], True, pair_id=f"{tag}{i}-pos"))
            out.append(Pair(queries[q], corpus[neg], False, pair_id=f"{tag}{i}-neg"))
        rng.shuffle(out)
        return out

    half = len(qids) // 2
    return Dataset("cisi", pairs(qids[:half], n_train, "tr"), pairs(qids[half:], n_eval, "ev"))


def load(name: str, n_train: int, n_eval: int, seed: int) -> Dataset:
    if name == "cisi":
        return cisi_pairs(CISI, n_train, n_eval, seed)
    from lorag_harness.data.builtin import orange_loader

    return orange_loader(ORANGE[name])(None, {"n_train": n_train, "n_eval": n_eval, "seed": seed})


def save(change) -> None:
    """Read-modify-write of this bench's key only."""
    update(KEY, change=change)


def coerce(v: str):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(v.lower(), v)


def experiment(args) -> None:
    from lorag_harness.trainers.profiles import PROFILES
    from lorag_harness.trainers.train import TrainConfig, train

    overrides = dict(kv.split("=", 1) for kv in args.set)
    if overrides.get("prompt") == "query-first":  # experiment: the query before the document
        from lorag_harness.backends import prompts

        prompts.messages = lambda q, d: [{"role": "system", "content": prompts.SYSTEM},
                                         {"role": "user", "content": f"Query: {q}\nDocument: {d}"}]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    values = dict(PROFILES[args.profile]["s1"]) | {k: coerce(v) for k, v in overrides.items() if k != "prompt"}
    if ("steps" in overrides or "epochs" in overrides) and "time_budget" not in overrides:
        values.pop("time_budget", None)  # as lorag train: an explicit count is run in full
    ds = load(args.dataset, args.train_pairs, args.eval_pairs, args.seed)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(stage="s1", out=out, seed=args.seed, **values)
        start = time.perf_counter()
        m = train(cfg, ds, progress=lambda s, n, loss, auc: print(f"step {s}/{n} loss {loss:.4f} val {auc}", flush=True))
        wall = time.perf_counter() - start
    row = {"dataset": args.dataset, "profile": args.profile, "overrides": overrides, "config": values,
           "wall_s": round(wall, 1),
           "train_s": m["metrics"]["seconds"], "steps_run": m["metrics"]["steps_run"],
           "first_loss": round(m["metrics"]["first_loss"], 4), "final_loss": round(m["metrics"]["final_loss"], 4),
           "validation": {k: m["validation"][k] for k in ("base_auc", "best_step", "best_auc", "curve")},
           "weak": m["weak"], "load": os.getloadavg()[0], "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "losses": m["metrics"]["losses"], "binary_losses": m["metrics"]["binary_losses"]}
    print(json.dumps(row))
    save(lambda mine: mine.setdefault("experiments", {}).__setitem__(f"{args.dataset}/{args.name}", row))


def evaluate(name, ds: Dataset, graders: dict, n_boot: int = 1000) -> dict:
    import numpy as np

    from lorag_harness.evaluation import stats

    y = np.array([p.label for p in ds.eval_pairs])
    out, correct, scores_of = {}, {}, {}
    for gname, g in graders.items():
        t = time.perf_counter()
        js = g.grade(ds.eval_pairs)
        scores = np.array([j.score for j in js], float)
        pred = np.array([bool(j.relevant) for j in js])
        correct[gname], scores_of[gname] = pred == y, scores
        out[gname] = {"accuracy": stats.wilson(int(correct[gname].sum()), len(y)).to_dict(),
                      "roc_auc": stats.bootstrap(stats.roc_auc, y, scores, n_resamples=n_boot).to_dict(),
                      "grade_s": round(time.perf_counter() - t, 1)}
    from lorag_harness.tasks.s1_relevance import delong

    for gname in graders:
        if gname != "embedding" and "embedding" in graders:
            out[gname]["vs_embedding"] = stats.mcnemar_exact(correct[gname], correct["embedding"])
            out[gname]["vs_embedding_auc"] = delong(y, scores_of[gname], scores_of["embedding"])
    if "s1" in graders and "base" in graders:
        out["s1"]["vs_base_auc"] = delong(y, scores_of["s1"], scores_of["base"])
    return out


def table(args) -> None:
    from lorag_harness.graders.embedding import EmbeddingGrader
    from lorag_harness.graders.lm_graders import LMGrader
    from lorag_harness.trainers.diagnostics import parse_duration
    from lorag_harness.trainers.profiles import DEFAULT_PROFILE, PROFILES
    from lorag_harness.trainers.train import TrainConfig, train

    budget = parse_duration(args.time_budget)
    done = json.loads(RESULTS.read_text()).get(KEY, {}).get("table", {}) if RESULTS.is_file() else {}
    for name in args.datasets.split(","):
        if name in done and not args.force:
            print(f"{name}: already in {RESULTS.name} (--force to run again)", flush=True)
            continue
        ds = load(name, args.train_pairs, args.eval_pairs, args.seed)
        out = Path(args.out_dir) / name
        values = dict(PROFILES[DEFAULT_PROFILE]["s1"]) | ({"time_budget": budget} if budget else {})
        budget = values.get("time_budget")
        cfg = TrainConfig(stage="s1", out=str(out), seed=args.seed, **values)
        start = time.perf_counter()
        m = train(cfg, ds, progress=lambda s, n, loss, auc: s % 10 == 0 and print(
            f"{name} step {s}/{n} loss {loss:.4f} val {auc}", flush=True))
        wall = time.perf_counter() - start
        max_doc = values.get("max_doc_tokens", 160)
        graders = {"base": LMGrader("base", max_doc_tokens=max_doc, precision="fp32"),  # as the table was measured
                   "s1": LMGrader("s1", adapter=str(out), max_doc_tokens=max_doc, precision="fp32"),
                   "embedding": EmbeddingGrader(train_pairs=ds.train_pairs)}
        row = {"train_pairs": len(ds.train_pairs), "eval_pairs": len(ds.eval_pairs), "profile": DEFAULT_PROFILE,
               "time_budget_s": budget, "train_wall_s": round(wall, 1), "steps_run": m["metrics"]["steps_run"],
               "stopped": m["metrics"]["stopped"], "validation_best_auc": m["validation"]["best_auc"],
               "validation_curve": m["validation"]["curve"],
               "weak": m["weak"], "graders": evaluate(name, ds, graders), "load": os.getloadavg()[0],
               "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        print(json.dumps({name: row}), flush=True)
        save(lambda mine: mine.setdefault("table", {}).__setitem__(name, row))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("table", "experiment"):
        p = sub.add_parser(cmd)
        p.add_argument("--train-pairs", type=int, default=1600)
        p.add_argument("--eval-pairs", type=int, default=400)
        p.add_argument("--seed", type=int, default=13)
        if cmd == "table":
            p.add_argument("--datasets", default="r8,r52,20ng,cisi")
            p.add_argument("--time-budget", default=None, help="default: the profile's")
            p.add_argument("--out-dir", default="runs/s1_datasets")
            p.add_argument("--force", action="store_true", help="Run datasets already in the table again")
        else:
            p.add_argument("name")
            p.add_argument("--dataset", default="20ng", choices=sorted(ORANGE) + ["cisi"])
            p.add_argument("--profile", default="quick")
            p.add_argument("--threads", type=int, default=0, help="torch threads (0: all)")
            p.add_argument("set", nargs="*", help="TrainConfig overrides key=value")
    args = ap.parse_args(argv)
    {"table": table, "experiment": experiment}[args.cmd](args)


if __name__ == "__main__":
    main()
