"""The embedding grader does each piece of work once: every distinct text is encoded once per run
(shared by the dense first stage, calibration and grading), and the calibration is reused across runs
until the embedder or the training pairs change."""
from collections import Counter

import pytest
from beir_fixtures import write_beir
from conftest import make_tiny_bert

from lorag_harness.backends.embedder import clear_vectors, load_embedder
from lorag_harness.evaluation.runner import BenchConfig, load_dataset, run_bench


def make_tiny_embedder(out, seed=0):
    """A 2-layer BERT encoder (hidden 32) with the packaged MiniLM tokenizer: a sentence-transformers folder (mean pooling)."""
    return make_tiny_bert(out, seed=seed, head=False)


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    return make_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture
def encoded(monkeypatch, tmp_path):
    """Every text the encoder is asked for, per embedder folder (a fresh vector store and cache folder)."""
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path / "cache"))
    seen: dict[str, Counter] = {}

    def watch(folder):
        model = load_embedder(folder)
        encode = model.encode
        counts = seen.setdefault(folder, Counter())

        def counting(texts, *args, **kwargs):
            counts.update(texts)
            return encode(texts, *args, **kwargs)

        monkeypatch.setattr(model, "encode", counting)
        return counts

    clear_vectors()
    yield watch
    clear_vectors()


def bench(root, embedder, first_stage, k=5):
    config = BenchConfig(graders=["embedding"], tasks=["rerank"], dataset=f"beir:{root}", embedder=embedder,
                         cache_path=":memory:", task_options={"*": {"embedder": embedder},
                                                              "rerank": {"k": k, "first_stage": first_stage}})
    return run_bench(config)


@pytest.mark.parametrize("first_stage", ["bm25", "dense"])
def test_a_rerank_encodes_each_distinct_query_and_document_once(tmp_path, tiny_embedder, encoded, first_stage):
    root = write_beir(tmp_path / "c")
    counts = encoded(tiny_embedder)
    result = bench(root, tiny_embedder, first_stage, k=5)
    ds = load_dataset(f"beir:{root}")
    records = result.results["rerank"]["embedding"].records
    assert len(records) == 3  # 3 evaluation queries x 5 candidates = 15 pairs
    assert counts and max(counts.values()) == 1, counts.most_common(3)  # no text encoded twice
    queries = {q.query_id: q.text for q in ds.queries}
    for r in records:  # every query and candidate was embedded (once)
        assert counts[queries[r["query_id"]]] == 1
    train_texts = {p.query for p in ds.train_pairs} | {p.document for p in ds.train_pairs}
    assert train_texts <= set(counts)  # calibration went through the same store
    if first_stage == "dense":  # the first stage embedded the whole corpus; the grader reused those vectors
        corpus = {d.text for d in ds.corpus}
        assert corpus <= set(counts) and set(counts) <= corpus | set(queries.values())


def test_a_second_run_reuses_the_calibration_and_a_changed_training_set_recalibrates(tmp_path, tiny_embedder, encoded,
                                                                                     r8_small):
    from lorag_harness.graders.embedding import EmbeddingGrader

    counts = encoded(tiny_embedder)
    pairs = r8_small.train_pairs
    first = EmbeddingGrader(model=tiny_embedder, train_pairs=pairs)
    assert first.calibration["cached"] is False and sum(counts.values()) > 0

    clear_vectors()  # a new run: nothing in memory
    counts.clear()
    second = EmbeddingGrader(model=tiny_embedder, train_pairs=pairs)
    assert second.calibration["cached"] is True and not counts  # no training pair encoded
    assert (second.coef, second.intercept) == (first.coef, first.intercept)
    assert second.fingerprint() == first.fingerprint()  # the judgment cache keeps answering

    clear_vectors()
    changed = pairs[:-1]
    third = EmbeddingGrader(model=tiny_embedder, train_pairs=changed)
    assert third.calibration["cached"] is False and set(counts) == {p.query for p in changed} | {p.document for p in changed}

    relabelled = [p.__class__(**{**p.to_dict(), "label": not p.label}) if i == 0 else p for i, p in enumerate(pairs)]
    assert EmbeddingGrader(model=tiny_embedder, train_pairs=relabelled).calibration["cached"] is False


def test_another_embedder_or_a_damaged_stored_fit_recalibrates(tmp_path, tiny_embedder, encoded, r8_small):
    from lorag_harness.evaluation.calibration import store_dir
    from lorag_harness.graders.embedding import EmbeddingGrader

    pairs = r8_small.train_pairs[:20]
    assert EmbeddingGrader(model=tiny_embedder, train_pairs=pairs).calibration["cached"] is False
    other = make_tiny_embedder(tmp_path / "other", seed=1)
    assert EmbeddingGrader(model=other, train_pairs=pairs).calibration["cached"] is False
    stored = sorted(store_dir().glob("*.json"))
    assert len(stored) == 2
    for f in stored:  # a kill mid-write cannot leave this (writes are atomic), a disk error can
        f.write_text('{"coef": ')
    again = EmbeddingGrader(model=tiny_embedder, train_pairs=pairs)
    assert again.calibration["cached"] is False
    assert EmbeddingGrader(model=tiny_embedder, train_pairs=pairs).calibration["cached"] is True
