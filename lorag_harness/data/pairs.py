"""Turn labelled documents into query–document pairs, a retrieval corpus and qrels."""
from __future__ import annotations

import random
from collections import defaultdict

from lorag_harness.errors import LoragError
from lorag_harness.api.types import Dataset, Doc, Pair, Query
from lorag_harness.data.validation import COUNT_OPTIONS, check_counts, text_key
from lorag_harness.data.topics import PHRASINGS, readable

LEAD_WORDS = 14


def lead(text: str, n: int = LEAD_WORDS) -> str:
    """The document's opening words (its title and first sentence for news)."""
    first = text.strip().split(". ")[0]
    words = first.split()[:n]
    return " ".join(words)


def reference_summary(text: str, topic_name: str) -> str:
    """A one-sentence summary from the document's lead and its topic."""
    return f"A {topic_name} story: {lead(text)}."


def truncate_words(text: str, max_words: int) -> str:
    words = text.split(maxsplit=max_words)  # stops after max_words: long documents stay cheap
    return text if len(words) <= max_words else " ".join(words[:max_words])


def balanced_sample(docs: list[tuple[str, str]], n: int, rng: random.Random, skip: set[str] | None = None,
                    skipped: list | None = None) -> list[tuple[str, str]]:
    """Up to ``n`` documents, round-robin over classes so that small classes appear. Documents
    whose text is in ``skip`` or already taken are passed over (and appended to ``skipped``)."""
    by_class: dict[str, list] = defaultdict(list)
    for d in docs:
        by_class[d[0]].append(d)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_class.items())]
    skip = set(skip or ())
    out = []
    while len(out) < n and any(pools):
        for pool in pools:
            while pool and len(out) < n:
                d = pool.pop()
                key = text_key(d[1])
                if key in skip:
                    if skipped is not None:
                        skipped.append(d)
                    continue
                skip.add(key)
                out.append(d)
                break
    return out


def make_pairs(docs, topics: dict[str, str], rng: random.Random, prefix: str, positive_rate: float = 0.5) -> list[Pair]:
    """One positive and one negative pair per document; with another ``positive_rate``, two pairs
    per document still, some documents getting two negatives (or two positives) instead."""
    labels = sorted(topics)
    if len(labels) < 2:
        raise LoragError("building pairs needs at least two topics")
    if not 0.0 < positive_rate < 1.0:
        raise LoragError(f"positive_rate must be between 0 and 1 (exclusive), not {positive_rate}")
    if positive_rate != 0.5:
        return _pairs_at_rate(docs, topics, labels, rng, prefix, positive_rate)
    pairs = []
    for i, (label, text) in enumerate(docs):
        other = rng.choice([lab for lab in labels if lab != label])
        for qlabel, rel in ((label, True), (other, False)):
            query = rng.choice(PHRASINGS).format(t=topics[qlabel])
            pairs.append(Pair(query, text, rel, topics[qlabel], topics[label], f"{prefix}{i}-{'pos' if rel else 'neg'}"))
    rng.shuffle(pairs)
    return pairs


def _pairs_at_rate(docs, topics, labels, rng, prefix, rate) -> list[Pair]:
    """2 pairs per document, round(rate * all) of them relevant (at least one of each class)."""
    total = 2 * len(docs)
    n_pos = min(max(round(rate * total), 1), total - 1)
    pairs = []
    for i, (label, text) in enumerate(docs):
        mixed = i < (n_pos if n_pos <= len(docs) else total - n_pos)
        if mixed:
            other = rng.choice([lab for lab in labels if lab != label])
            plan = [(label, rng.choice(PHRASINGS), True), (other, rng.choice(PHRASINGS), False)]
        elif n_pos <= len(docs):  # two different negative queries
            combos = [(o, ph) for o in labels if o != label for ph in PHRASINGS]
            plan = [(o, ph, False) for o, ph in rng.sample(combos, 2)]
        else:  # two phrasings of the document's own topic
            plan = [(label, ph, True) for ph in rng.sample(PHRASINGS, 2)]
        for k, (qlabel, phrasing, rel) in enumerate(plan):
            query = phrasing.format(t=topics[qlabel])
            pairs.append(Pair(query, text, rel, topics[qlabel], topics[label], f"{prefix}{i}-{'pos' if rel else 'neg'}{k}"))
    rng.shuffle(pairs)
    return pairs


def build_dataset(
    name: str,
    train_docs: list[tuple[str, str]],
    test_docs: list[tuple[str, str]],
    *,
    n_train: int = 400,
    n_eval: int = 200,
    corpus_size: int = 300,
    n_queries: int = 16,
    seed: int = 13,
    max_words: int = 120,
    positive_rate: float = 0.5,
) -> Dataset:
    """Seeded train/eval pairs from ``(label, text)`` documents; the retrieval corpus comes from
    held-out documents. No text (as the grader sees it) is used twice: training, evaluation and
    corpus documents are disjoint, and texts given two labels are left out."""
    check_counts(dict(n_train=n_train, n_eval=n_eval, corpus_size=corpus_size, n_queries=n_queries, seed=seed,
                      max_words=max_words))
    for key, value in (("n_train", n_train), ("n_eval", n_eval)):
        if value < 2:
            raise LoragError(f"dataset option {key} ({COUNT_OPTIONS[key]}) must be at least 2 (a relevant and a "
                             f"not-relevant pair per document), not {value}")
    rng = random.Random(seed)
    train_docs = [(lab, truncate_words(t, max_words)) for lab, t in train_docs]
    test_docs = [(lab, truncate_words(t, max_words)) for lab, t in test_docs]
    topics = {lab: readable(lab) for lab in sorted({lab for lab, _ in train_docs + test_docs})}
    labels_of: dict[str, set] = defaultdict(set)
    for lab, t in train_docs + test_docs:
        labels_of[text_key(t)].add(lab)
    twice = {k for k, labs in labels_of.items() if len(labs) > 1}

    skipped: list = []
    train = balanced_sample(train_docs, n_train // 2, rng, twice, skipped)
    held_out = rng.sample(test_docs, len(test_docs))
    used = twice | {text_key(t) for _, t in train}
    eval_docs = balanced_sample(held_out, n_eval // 2, rng, used, skipped)
    used |= {text_key(t) for _, t in eval_docs}
    taken = {id(d) for d in eval_docs}
    corpus_docs = balanced_sample([d for d in held_out if id(d) not in taken], corpus_size, rng, used, skipped)
    corpus = [Doc(f"d{i}", t, lab) for i, (lab, t) in enumerate(corpus_docs)]

    present = sorted({d.topic for d in corpus})
    queries = []
    for i in range(min(n_queries, len(present) * len(PHRASINGS))):
        label = present[i % len(present)]
        phrasing = PHRASINGS[(i // len(present)) % len(PHRASINGS)]
        queries.append(Query(f"q{i}", phrasing.format(t=topics[label]), label))
    qrels = {q.query_id: {d.doc_id: int(d.topic == q.topic) for d in corpus} for q in queries}

    train_pairs = make_pairs(train, topics, rng, "tr", positive_rate)  # positive_rate: share of relevant pairs
    eval_pairs = make_pairs(eval_docs, topics, rng, "ev", positive_rate)
    references = {
        p.pair_id: {
            "query_topic": p.query_topic,
            "document_topic": p.document_topic,
            "summary": reference_summary(p.document, p.document_topic),
        }
        for p in train_pairs + eval_pairs
    }
    notes = []
    if skipped:
        notes.append(f"{name}: {len(skipped)} documents passed over: repeated, labelled twice, or already in "
                     "another split")
    for what, got, asked, option in (("training pairs", len(train_pairs), n_train, "--train-pairs"),
                                     ("evaluation pairs", len(eval_pairs), n_eval, "--eval-pairs"),
                                     ("corpus documents", len(corpus), corpus_size, "--corpus-size"),
                                     ("retrieval queries", len(queries), n_queries, "--rag-queries")):
        if got < asked:
            why = "pairs come two per document" if got == asked - 1 and what.endswith("pairs") else "not enough data"
            notes.append(f"{name}: {got} {what}, not the {asked} asked ({option}: {why})")
    return Dataset(name, train_pairs, eval_pairs, corpus, queries, qrels, topics, references, notes)
