import json

import pytest
from click.testing import CliRunner
from beir_fixtures import DOCS, QRELS, write_beir

from lorag_harness.cli.app import cli
from lorag_harness.data.beir import load_beir, query_disjoint_split
from lorag_harness.errors import DataError, LoragError
from lorag_harness.evaluation.runner import load_dataset


def test_reads_the_layout_and_splits_queries_apart(tmp_path):
    root = write_beir(tmp_path / "c")
    ds = load_dataset(f"beir:{root}", {"seed": 3, "train_fraction": 0.25})
    assert ds.name == "c/test" and len(ds.corpus) == 12 and len(ds.queries) == 5
    assert ds.corpus[0].text.startswith("Apple harvest\nThe apple harvest")
    judged = {q for q, _, _ in QRELS}
    assert len(ds.train_qrels) == 1 and set(ds.train_qrels) | set(ds.qrels) == judged
    assert not set(ds.train_qrels) & set(ds.qrels)  # no query in both
    assert ds.qrels.get("q1", {}).get("d1", 2) == 2  # graded scores kept
    train_q = {p.pair_id.split(":")[1] for p in ds.train_pairs}
    eval_q = {p.pair_id.split(":")[1] for p in ds.eval_pairs}
    assert train_q == set(ds.train_qrels) and eval_q <= set(ds.qrels) and not train_q & eval_q
    # training pairs balanced (evaluation negatives: judged ones only); no negative is judged relevant
    assert sum(p.label for p in ds.train_pairs) * 2 == len(ds.train_pairs)
    for pairs, qrels in ((ds.train_pairs, ds.train_qrels), (ds.eval_pairs, ds.qrels)):
        for p in pairs:
            q, d = p.pair_id.split(":")[1:]
            assert p.label == (qrels[q].get(d, 0) > 0)
    again = load_dataset(f"beir:{root}", {"seed": 3, "train_fraction": 0.25})
    assert again.train_qrels == ds.train_qrels and again.fingerprint() == ds.fingerprint()


def test_query_disjoint_split_is_seeded_and_complete():
    qrels = {f"q{i}": {"d": 1} for i in range(40)}
    train, evals = query_disjoint_split(qrels, 0.2, seed=1)
    assert len(train) == 8 and len(evals) == 32 and not set(train) & set(evals) and set(train) | set(evals) == set(qrels)
    assert query_disjoint_split(qrels, 0.2, seed=1)[0] == train and query_disjoint_split(qrels, 0.2, seed=2)[0] != train
    assert query_disjoint_split(qrels, 0, seed=1) == ({}, qrels)
    with pytest.raises(LoragError, match="train_fraction"):
        query_disjoint_split(qrels, 1.0, seed=1)


def test_train_split_file_is_used_and_never_shares_a_query(tmp_path):
    root = write_beir(tmp_path / "c", qrels={"test": QRELS, "train": [("q1", "d3", 1), ("q5", "d9", 1)]},
                      splits=("test", "train"))
    ds = load_beir(str(root), {"split": "test"})
    assert ds.train_source == "qrels/train.tsv"
    assert set(ds.train_qrels) == {"q5"}  # q1 is an evaluation query: dropped from training
    assert set(ds.qrels) == {q for q, _, _ in QRELS}
    with pytest.raises(DataError, match=r"qrels/dev.tsv: no such qrels split \(found: test, train\)"):
        load_beir(str(root), {"split": "dev"})


@pytest.mark.parametrize("file, content, message", [
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"\n', r"corpus.jsonl:2: invalid JSON"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n\n{"_id": "d1", "text": "b"}\n', r"corpus.jsonl:3: duplicate _id 'd1' \(first on line 1\)"),
    ("corpus.jsonl", '{"_id": "d1", "text": {"a": 1}}\n', r"corpus.jsonl:1: field 'text' must be a string, not dict"),
    ("corpus.jsonl", '{"text": "a"}\n', r"corpus.jsonl:1: missing field '_id'"),
    ("queries.jsonl", '{"_id": "q1", "text": "x"}\n{"_id": "q1", "text": "y"}\n', r"queries.jsonl:2: duplicate _id 'q1'"),
    ("queries.jsonl", '{"_id": "q1", "text": "x"}\n{"_id": "q2", "text": " "}\n', r"queries.jsonl:2: field 'text' is empty"),
    ("queries.jsonl", '{"_id": "q1", "text": "x"}\n{"_id": "q2"}\n', r"queries.jsonl:2: missing field 'text'"),
    ("qrels/test.tsv", "q1\td1\t1\n", r"test.tsv:1: missing header line"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tnope\t1\n", r"test.tsv:3: document 'nope' is not in corpus.jsonl"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq9\td1\t1\n", r"test.tsv:2: query 'q9' is not in queries.jsonl"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"test.tsv:2: score 'high' is not an integer"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1 1\n", r"test.tsv:2: expected 3 tab-separated columns"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t0\n", r"test.tsv:3: conflicting scores"),
    ("corpus.jsonl", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "\xff"}\n', r"corpus.jsonl:2: not UTF-8"),
])
def test_bad_files_name_file_and_line(tmp_path, file, content, message):
    root = write_beir(tmp_path / "c")
    path = root / file
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        load_beir(str(root), {})


def test_cli_reports_a_bad_qrels_line_without_traceback(tmp_path):
    root = write_beir(tmp_path / "c")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td99\t1\n")
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", "-d", f"beir:{root}"])
    assert result.exit_code == 2 and "test.tsv:3: document 'd99' is not in corpus.jsonl" in result.output
    assert "Traceback" not in result.output


def test_cli_split_option_picks_the_qrels_file(tmp_path):
    root = write_beir(tmp_path / "c")
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", "-d", f"beir:{root}",
                                      "--split", "dev"])
    assert result.exit_code == 2 and "no such qrels split (found: test)" in result.output


def test_cli_reranks_a_beir_folder(tmp_path):
    root = write_beir(tmp_path / "c")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", "-d", f"beir:{root}",
                                      "--rerank-k", "5", "--first-stage", "dense", "--fusion", "rrf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dense@5 (first stage)" in result.output and "ndcg@10" in result.output
    assert "embedding + RRF with the first stage" in " ".join(result.output.split())
    report = json.loads(out.read_text())
    rec = report["results"]["rerank"]["embedding"]["records"]
    assert report["dataset"] == "c/test" and {r["first_stage"] for r in rec} == {"dense"} and {r["k"] for r in rec} == {5}
    assert {r["fusion"] for r in rec} == {"rrf"}


def test_fusion_without_the_rerank_task_is_refused():
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "s1-relevance", "--fusion", "rrf"])
    assert result.exit_code == 2 and "--fusion rrf: only the rerank task fuses rankings: add -t rerank" in result.output


def test_split_on_a_dataset_without_splits_is_an_error():
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "s1-relevance", "--split", "dev"])
    assert result.exit_code == 2 and "--split applies to beir:DIR and hf:NAME datasets only" in result.output


def _shallow_judged(tmp_path):
    """Apple documents d1..d3 are all about the query, but only d1 is judged (shallow judgments):
    d2 and d3 rank at the top of BM25 unjudged."""
    docs = dict(DOCS_MORE)
    qrels = [("q1", "d1", 1), ("q2", "d4", 1), ("q3", "d7", 1), ("q4", "d10", 1)]
    return write_beir(tmp_path / "shallow", qrels=qrels, docs=docs)


def test_training_negatives_are_never_the_top_ranked_unjudged_documents(tmp_path):
    from lorag_harness.retrieval import first_stage as retrieval
    from lorag_harness.data.negatives import window_for

    root = _shallow_judged(tmp_path)
    ds = load_dataset(f"beir:{root}", {"seed": 1, "train_fraction": 0.5})
    lo, _ = window_for(len(ds.corpus))
    assert lo >= 3
    hits = retrieval.retrieve("bm25", ds, [q for q in ds.queries if q.query_id in ds.train_qrels], lo)
    for p in ds.train_pairs:
        q, d = p.pair_id.split(":")[1:]
        assert p.provenance, p
        if p.label:
            assert p.provenance == "judged-relevant"
        else:
            assert d not in [h for h, _ in hits[q]]  # never one of the query's top-ranked documents
            assert p.provenance.startswith("bm25-ranks-") or p.provenance == "random-unjudged"
    assert sum(not p.label for p in ds.train_pairs) == sum(p.label for p in ds.train_pairs)
    # no document is judged not relevant here: the evaluation negatives are random, and the notes say so
    assert {p.provenance for p in ds.eval_pairs if not p.label} == {"random-unjudged"}
    assert any("judge no document not relevant" in n for n in ds.notes)
    again = load_dataset(f"beir:{root}", {"seed": 1, "train_fraction": 0.5})
    assert [p.pair_id for p in again.train_pairs] == [p.pair_id for p in ds.train_pairs]


def test_evaluation_pairs_use_judged_negatives_only_when_there_are_some(tmp_path):
    root = write_beir(tmp_path / "c")  # q4 judges d12 not relevant
    ds = load_dataset(f"beir:{root}", {"seed": 3, "train_fraction": 0.25})
    negs = [p for p in ds.eval_pairs if not p.label]
    assert all(p.provenance == "judged-not-relevant" for p in negs)
    assert not any("judge no document not relevant" in n for n in ds.notes)


@pytest.mark.integration
def test_calibration_on_shallow_judgments_keeps_a_positive_slope_and_reranking_is_not_inverted(tmp_path):
    from lorag_harness.retrieval.metrics import order
    from lorag_harness.graders.embedding import EmbeddingGrader

    root = _shallow_judged(tmp_path)
    ds = load_dataset(f"beir:{root}", {"seed": 1, "train_fraction": 0.5})
    grader = EmbeddingGrader(train_pairs=ds.train_pairs)
    assert grader.coef > 0
    by_id = {d.doc_id: d for d in ds.corpus}
    from lorag_harness.api.types import Pair
    for q in ds.queries:
        if q.query_id not in ds.qrels:
            continue
        docs = [d.doc_id for d in ds.corpus]
        js = grader.grade([Pair(q.text, by_id[d].text, False) for d in docs])
        top = order(docs, js)[0]
        assert ds.qrels[q.query_id].get(top, 0) > 0 or top in SAME_TOPIC[q.query_id]


# the fixture's twelve documents and more of each topic, so that a rank window exists below the top
DOCS_MORE = {**DOCS,
             "d13": ("Apple orchards", "An orchard of apple trees gives a good harvest in a warm year."),
             "d14": ("Harvest time", "Farmers harvest apples and pears from the orchard in autumn."),
             "d15": ("Sea mammals", "Whales and seals live in the cold ocean."),
             "d16": ("Rail travel", "Passengers take trains on the railway between cities."),
             "d17": ("Telescopes", "A telescope lets astronomers see stars and galaxies."),
             "d18": ("Cooking", "Bake the bread in a hot oven for an hour."),
             "d19": ("Gardening", "Water the flowers in the garden every morning."),
             "d20": ("Music", "The orchestra played a symphony in the concert hall.")}
SAME_TOPIC = {"q1": {"d1", "d2", "d3", "d13", "d14"}, "q2": {"d4", "d5", "d15"}, "q3": {"d7", "d8", "d16"},
              "q4": {"d10", "d11", "d17"}}


def test_a_negative_judged_for_a_query_without_positives_leaves_the_random_negatives(tmp_path):
    qrels = [(q, d, g) for q, d, g in QRELS if q != "q4"] + [("q4", "d12", -1)]  # q4: judged, but nothing relevant
    ds = load_beir(str(write_beir(tmp_path / "c", qrels=qrels)), {"train_fraction": 0.0})
    labels = [p.label for p in ds.eval_pairs]
    assert labels.count(True) == 6 and labels.count(False) == 6  # each positive gets a random negative
    assert {p.provenance for p in ds.eval_pairs if not p.label} == {"random-unjudged"}
    assert any("judge no document not relevant for a query with a relevant one" in n for n in ds.notes)
