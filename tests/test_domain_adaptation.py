"""`lorag pairs` (pseudo-queries from a corpus, honest negatives, provenance, seeded, resumable) and
`lorag train embedding` (a fine-tuned embedder the embedding grader loads), on a tiny BERT."""
import json

import pytest
import torch
from click.testing import CliRunner
from beir_fixtures import write_beir

from lorag_harness.cli.app import cli

DOCS = {f"d{i}": (f"Title number {i} about {topic}",
                  f"The first sentence tells about {topic} in detail. A second sentence on {topic} follows here. "
                  f"Then a third sentence about {topic} and more words. Finally the fourth sentence closes it.")
        for i, topic in enumerate(["apples", "whales", "trains", "stars", "rain", "music", "bread", "cars",
                                   "ships", "flowers", "books", "coffee", "chess", "rivers", "bees", "clocks"] * 2)}


@pytest.fixture
def corpus(tmp_path):
    queries = {"q1": "apples", "q2": "whales", "q3": "trains", "q4": "stars", "q5": "rain"}
    qrels = [("q1", "d0", 1), ("q2", "d1", 1), ("q3", "d2", 1), ("q4", "d3", 1), ("q5", "d4", 1)]
    return write_beir(tmp_path / "c", qrels=qrels, docs=DOCS, queries=queries)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def rows(path):
    return [json.loads(line) for line in open(path)]


def test_pairs_have_provenance_honest_negatives_and_are_seeded(corpus, tmp_path):
    out = tmp_path / "pairs.jsonl"
    r = run("pairs", f"beir:{corpus}", "--out", out, "--queries", "title,ict", "--negatives", "2")
    assert r.exit_code == 0, r.output
    got = rows(out)
    assert {g["provenance"] for g in got if g["label"]} == {"title", "ict"}
    negs = [g for g in got if not g["label"]]
    assert negs and all(g["provenance"].startswith("bm25-ranks-") or g["provenance"] == "random-unjudged" for g in negs)
    assert all(g["doc_id"] != g["source_doc"] for g in negs)  # never the passage the query came from
    titles = {d: t for d, (t, _) in DOCS.items()}
    for g in got:
        if g["label"] and g["provenance"] == "title":
            assert g["query"] == titles[g["doc_id"]] and titles[g["doc_id"]] not in g["document"]
        if g["label"] and g["provenance"] == "ict":
            assert g["query"] not in g["document"]  # the sentence is taken out of its passage
    again = tmp_path / "again.jsonl"
    assert run("pairs", f"beir:{corpus}", "--out", again, "--queries", "title,ict", "--negatives", "2").exit_code == 0
    assert again.read_text() == out.read_text()
    other = tmp_path / "other.jsonl"
    assert run("pairs", f"beir:{corpus}", "--out", other, "--queries", "title,ict", "--negatives", "2", "--seed", "5").exit_code == 0
    assert other.read_text() != out.read_text()


def test_pairs_resume_after_a_kill_and_refuse_other_options(corpus, tmp_path):
    out = tmp_path / "pairs.jsonl"
    assert run("pairs", f"beir:{corpus}", "--out", out).exit_code == 0
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[: len(lines) // 2]) + lines[len(lines) // 2][:20])  # killed mid-line
    r = run("pairs", f"beir:{corpus}", "--out", out)
    assert r.exit_code == 0, r.output
    assert "resumed" in r.output
    assert out.read_text() == full
    r = run("pairs", f"beir:{corpus}", "--out", out, "--negatives", "3")
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert run("pairs", f"beir:{corpus}", "--out", out, "--negatives", "3", "--overwrite").exit_code == 0


def test_pairs_resume_redoes_a_passage_whose_rows_were_cut_on_a_line_boundary(corpus, tmp_path):
    out = tmp_path / "pairs.jsonl"
    assert run("pairs", f"beir:{corpus}", "--out", out, "--negatives", "2").exit_code == 0
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    cut = next(i for i in range(1, len(lines)) if json.loads(lines[i])["source_doc"] == json.loads(lines[i - 1])["source_doc"]
               and i > len(lines) // 2)  # inside a passage's block, after a whole line (a full disk, a kill mid-write)
    out.write_text("".join(lines[:cut]))
    r = run("pairs", f"beir:{corpus}", "--out", out, "--negatives", "2")
    assert r.exit_code == 0 and "resumed" in r.output, r.output
    assert out.read_text() == full


def test_pairs_never_write_over_the_corpus_and_refuse_a_run_that_makes_none(corpus, tmp_path):
    before = (corpus / "corpus.jsonl").read_text()
    for out in (corpus / "corpus.jsonl", tmp_path / ".." / tmp_path.name / "c" / "corpus.jsonl"):
        r = run("pairs", f"beir:{corpus}", "--out", out, "--overwrite")
        assert r.exit_code == 2 and "would write over the corpus being read" in r.output, r.output
    assert (corpus / "corpus.jsonl").read_text() == before
    linked = tmp_path / "linked.jsonl"  # the corpus under another name
    linked.hardlink_to(corpus / "corpus.jsonl")
    meta_named = tmp_path / "pairs.jsonl.meta.json"  # the run's .meta.json beside --out pairs.jsonl
    meta_named.write_text(before)
    for spec, out in ((f"beir:{corpus}", linked), (str(meta_named), tmp_path / "pairs.jsonl")):
        r = run("pairs", spec, "--out", out, "--overwrite")
        assert r.exit_code == 2 and "would write over the corpus being read" in r.output, r.output
    assert (corpus / "corpus.jsonl").read_text() == before and meta_named.read_text() == before
    passages = tmp_path / "p.txt"  # no titles, and one short sentence a passage: neither kind can make a pair
    passages.write_text("Apples grow on trees.\nWhales swim in the sea.\n")
    r = run("pairs", passages, "--out", tmp_path / "none.jsonl")
    assert r.exit_code == 2 and "no pairs from its 2 passages" in r.output and "--queries title needs a title" in r.output
    assert not (tmp_path / "none.jsonl").exists()


def test_pairs_from_a_plain_passages_file_and_bad_options(tmp_path):
    passages = tmp_path / "p.txt"
    passages.write_text("".join(body + "\n" for _, body in DOCS.values()))
    out = tmp_path / "pairs.jsonl"
    r = run("pairs", passages, "--out", out, "--queries", "ict")
    assert r.exit_code == 0, r.output
    assert {g["provenance"] for g in rows(out) if g["label"]} == {"ict"}
    r = run("pairs", passages, "--out", out, "--queries", "nonsense", "--overwrite")
    assert r.exit_code == 2 and "--queries" in r.output
    r = run("pairs", tmp_path / "missing.txt", "--out", out)
    assert r.exit_code == 2 and "missing.txt" in r.output


def tiny_sentence_model(out):
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from lorag_harness.backends.embedder import resolve_embedder

    tok = AutoTokenizer.from_pretrained(resolve_embedder(None))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256)).save_pretrained(out / "bert")
    tok.save_pretrained(out / "bert")
    word = models.Transformer(str(out / "bert"), max_seq_length=64)
    SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension())]).save(str(out / "st"))
    return str(out / "st")


@pytest.mark.parametrize("source", ["synthetic", "both"])
def test_train_embedding_writes_a_folder_the_embedding_grader_loads(corpus, tmp_path, source):
    from lorag_harness.graders.embedding import make_embedding
    from lorag_harness.api.registry import GraderContext
    from lorag_harness.evaluation.runner import load_dataset

    base = tiny_sentence_model(tmp_path)
    out = tmp_path / "emb"
    r = run("train", "embedding", "--corpus", f"beir:{corpus}", "--pairs-from", source, "--from", base,
            "--out", out, "--steps", "2", "--batch-size", "4")
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 2 and manifest["machine"]["precision"] == "fp32"
    assert ("judged-relevant" in manifest["pairs"]) == (source == "both") and "title" in manifest["pairs"]
    ds = load_dataset(f"beir:{corpus}", {"seed": 13})
    grader = make_embedding(str(out), GraderContext(dataset=ds))
    judgments = grader.grade(ds.eval_pairs[:4])
    assert len(judgments) == 4 and all(0.0 <= j.score <= 1.0 for j in judgments)
    # the weights changed: the trained model embeds differently from its base
    from sentence_transformers import SentenceTransformer
    a = SentenceTransformer(base, device="cpu").encode(["apples"])
    b = SentenceTransformer(str(out), device="cpu").encode(["apples"])
    assert not (abs(a - b) < 1e-6).all()


def test_train_embedding_saves_the_weight_space_average_with_its_base(corpus, tmp_path):
    from sentence_transformers import SentenceTransformer

    base = tiny_sentence_model(tmp_path)
    common = ["train", "embedding", "--corpus", f"beir:{corpus}", "--from", base, "--steps", "3", "--batch-size", "4",
              "--lr", "1e-3"]
    assert run(*common, "--out", tmp_path / "full").exit_code == 0  # the default: the weights as trained
    r = run(*common, "--out", tmp_path / "half", "--tuned-share", "0.5")  # half fine-tuned, half the base's
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "half" / "manifest.json").read_text())["hyper"]["tuned_share"] == 0.5
    start, full, half = (SentenceTransformer(str(f), device="cpu").state_dict() for f in (base, tmp_path / "full",
                                                                                          tmp_path / "half"))
    moved = [k for k in full if full[k].is_floating_point() and not torch.equal(full[k], start[k])]
    assert moved  # same seed, same steps: the halfway model lies halfway between the base and the full one
    for k in moved:
        assert torch.allclose(half[k], (full[k] + start[k]) / 2, atol=1e-6)
    bad = run(*common, "--out", tmp_path / "bad", "--tuned-share", "0")
    assert bad.exit_code == 2 and "--tuned-share" in bad.output and not (tmp_path / "bad").exists()


def test_train_embedding_needs_pairs(tmp_path):
    r = run("train", "embedding", "--out", tmp_path / "emb")
    assert r.exit_code == 2 and "--corpus" in r.output


@pytest.mark.parametrize("bad", [{"query": None}, {"document": ["a", "list"]}, {"query": "  "}])
def test_a_pairs_file_row_without_text_is_refused_by_line_before_training(tmp_path, bad):
    good = {"query": "apples", "document": "Apples grow on trees in the orchard.", "label": True}
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in (good, good | {"label": False}, good | bad)))
    r = run("train", "embedding", "--pairs", pairs, "--out", tmp_path / "emb")
    field = next(iter(bad))
    assert r.exit_code == 2 and f"pairs.jsonl:3: field '{field}' must be a non-empty string" in r.output, r.output
    assert not (tmp_path / "emb").exists()


def test_a_pairs_file_beside_a_corpus_it_would_ignore_is_refused(corpus, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    assert run("pairs", f"beir:{corpus}", "--out", pairs).exit_code == 0
    for extra in (["--corpus", f"jsonl:{corpus}", "--pairs-from", "synthetic"],  # which one would it train on?
                  ["-d", f"beir:{corpus}", "--corpus", f"beir:{corpus}"],
                  ["-d", f"beir:{corpus}", "--pairs-from", "qrels"]):  # the file would not be used at all
        r = run("train", "embedding", "--pairs", pairs, *extra, "--out", tmp_path / "emb")
        assert r.exit_code == 2 and f"--pairs {pairs}" in r.output, (extra, r.output)
    assert not (tmp_path / "emb").exists()


def test_train_reranker_from_synthetic_pairs(corpus, tmp_path):
    from conftest import make_tiny_bert

    bert = make_tiny_bert(tmp_path / "bert")
    out = tmp_path / "rr"
    r = run("train", "reranker", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", "--from", bert,
            "--out", out, "--steps", "2", "--batch-size", "4", "--calibration-pairs", "8", "--embedder", bert)
    assert r.exit_code == 0, r.output
    assert "training pairs (synthetic)" in r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["training_pairs"] > 16 and "[synthetic]" in manifest["dataset"]


def test_generated_queries_pass_the_round_trip_filter(corpus, tmp_path):
    from lorag_harness.data.synthetic import PairOptions, read_passages, write_pairs

    class Writer:  # a question from its passage for even documents, one no passage answers for odd ones
        name = "fake"

        def __call__(self, p, seed):
            return p.text.split(".")[0] if int(p.doc_id[1:]) % 2 == 0 else "zebra quantum saxophone?"

    out = tmp_path / "gen.jsonl"
    counts = write_pairs(read_passages(f"beir:{corpus}"), out, PairOptions(kinds=("generate",), round_trip_k=3),
                         writer=Writer())
    kept = [g for g in rows(out) if g["label"]]
    assert kept and {g["provenance"] for g in kept} == {"generate:fake"}
    assert all(int(g["doc_id"][1:]) % 2 == 0 for g in kept)  # the odd ones' questions did not come back
    assert counts["without_pairs"] >= len(DOCS) // 2


def test_train_embedding_distils_a_teacher_graders_margins(corpus, tmp_path):
    base = tiny_sentence_model(tmp_path)
    out = tmp_path / "student"
    r = run("train", "embedding", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", "--from", base,
            "--teacher", f"embedding:{base}", "--out", out, "--steps", "2", "--batch-size", "4")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "manifest.json").read_text())["hyper"]["teacher"] == f"embedding:{base}"
    r = run("train", "embedding", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", "--from", base,
            "--teacher", "no-such-grader", "--out", tmp_path / "x", "--steps", "1")
    assert r.exit_code == 2 and "no-such-grader" in r.output


def test_pairs_refuses_an_unwritable_out_before_reading_the_corpus(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run("pairs", str(tmp_path / "missing-corpus.txt"), "--out", str(blocker / "pairs.jsonl"))
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"error: --out {blocker / 'pairs.jsonl'}: cannot create the folder")


def test_query_writer_prompts_as_inpars_and_a_batch_writes_what_one_at_a_time_writes(corpus, tiny_model_dir):
    from lorag_harness.data.synthetic import Passage, QueryWriter, clean_query, read_passages

    passages = [Passage(f"d{i}", f"Title {i}", " ".join(["indexing of abstracts"] * (i + 1))) for i in range(4)]
    passages += read_passages(f"beir:{corpus}")[:1]  # prompts of different lengths
    writer = QueryWriter(tiny_model_dir, max_new_tokens=6)
    prompt = writer.prompt(passages[0])
    assert prompt.count("Relevant Query:") == 4 and prompt.endswith("\nRelevant Query:")  # three examples, then it
    single = [writer(p, 0) for p in passages]
    seen, generate = [], writer.model.generate

    def spy(**kw):
        seen.append(kw["attention_mask"])
        return generate(**kw)

    writer.model.generate = spy
    writer.prefetch(passages)  # one batch of prompts of different lengths
    mask = seen[0]
    assert mask.shape[0] == 5 and bool(mask[:, -1].all()) and not bool(mask[:, 0].all())  # padded on the left
    assert [writer(p, 0) for p in passages] == single
    assert clean_query(' "Relevant Query: how are abstracts indexed?"\nExample 5:') == "how are abstracts indexed?"
