"""`lorag train reranker --teacher SPEC`: a cross-encoder (tiny BERT) learns a teacher grader's score
margins (MarginMSE) on pairs from the corpus; teachers without scores and bad options are refused
before any training."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from beir_fixtures import write_beir
from conftest import make_tiny_bert, word_overlap
from lorag_harness import hookimpl
from lorag_harness.api.types import Judgment
from lorag_harness.cli.app import cli

TOPICS = ["apples", "whales", "trains", "stars", "rain", "music", "bread", "cars"]
DOCS = {f"d{i}": (f"{topic} {i}", f"All about {topic}: {topic} here, {topic} there. Some {topic} facts follow. "
                                  f"More words on {topic} close it.")
        for i, topic in enumerate(TOPICS * 3)}


class Overlap:
    """From the share of the query's words found in the document, a score in [0.25, 0.75] (log-odds
    within +-1.1), or no score at all."""

    def __init__(self, scores=True):
        self.name, self.scores = "overlap", scores

    def grade(self, pairs, *, reasons=False, advance=None):
        out = []
        for p in pairs:
            share = word_overlap(p.query, p.document, 1)
            out.append(Judgment(relevant=share >= 0.5, score=0.25 + share / 2 if self.scores else None))
        return out


class Teachers:
    @hookimpl
    def register_graders(self, register):
        register("overlap", lambda arg, ctx: Overlap())
        register("no-scores", lambda arg, ctx: Overlap(scores=False))


@pytest.fixture
def teachers(register_plugin):
    register_plugin(Teachers(), "distillation-teachers")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("distil")
    return write_beir(root / "c", qrels=[("q1", "d0", 1)], docs=DOCS, queries={"q1": "apples"})


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("student"))


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def margins(model_dir, rows):
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, device="cpu", activation_fn=torch.nn.Identity())  # logits, as the grader loads it
    pos = model.predict([(r["anchor"], r["positive"]) for r in rows], show_progress_bar=False)
    neg = model.predict([(r["anchor"], r["negative"]) for r in rows], show_progress_bar=False)
    return np.asarray(pos) - np.asarray(neg)


def test_student_follows_the_teachers_order_after_distillation(corpus, student, tmp_path, teachers):
    from lorag_harness.trainers.common import triples
    from lorag_harness.trainers.recipe import TEACHER_WINDOW, synthetic_pairs
    from lorag_harness.trainers.teacher import log_odds

    out = tmp_path / "rr"
    r = run("train", "reranker", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", "--teacher", "overlap",
            "--from", student, "--out", out, "--steps", "40", "--batch-size", "8", "--lr", "3e-3",
            "--calibration-pairs", "8", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    assert "bm25-ranks-1-" in r.output  # with a teacher, negatives from BM25's top ranks (GPL)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hyper"]["loss"] == "margin-mse" and manifest["teacher"]["spec"] == "overlap"
    assert manifest["teacher"]["scale"] == "log-odds"  # the overlap score is in [0, 1]
    assert manifest["hyper"]["max_rows"] == 4096  # the --corpus recipe's cap for --teacher
    rows = triples(synthetic_pairs(f"beir:{corpus}", window=TEACHER_WINDOW), True, 13)
    teacher = []
    for row in rows:
        pos, neg = (j.score for j in Overlap().grade(_pairs(row)))
        teacher.append(log_odds(pos) - log_odds(neg))
    teacher = np.array(teacher)
    assert manifest["teacher"]["rows"] == len(rows)
    before, after = margins(student, rows), margins(str(out), rows)

    def agreement(m):  # rows whose positive/negative order the student and the teacher agree on
        decided = teacher != 0
        return float(np.mean(np.sign(m[decided]) == np.sign(teacher[decided])))

    assert agreement(after) >= 0.7 and agreement(after) >= agreement(before) + 0.3
    assert np.mean((after - teacher) ** 2) < 0.85 * np.mean((before - teacher) ** 2)


def _pairs(row):
    from lorag_harness.api.types import Pair

    return [Pair(row["anchor"], row["positive"], True), Pair(row["anchor"], row["negative"], False)]


def test_a_teacher_without_scores_is_refused_before_the_student_loads(corpus, student, tmp_path, teachers, monkeypatch):
    from lorag_harness.trainers import rerank_train

    def never(cfg):
        raise AssertionError("the student was loaded")

    monkeypatch.setattr(rerank_train, "build_model", never)
    out = tmp_path / "rr"
    r = run("train", "reranker", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", "--teacher", "no-scores",
            "--from", student, "--out", out, "--steps", "2")
    assert r.exit_code == 2, r.output
    assert "error: --teacher no-scores: gave a judgment without a score" in r.output
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("extra, message", [
    (["--teacher", "no-such-grader"], "--teacher no-such-grader: unknown grader 'no-such-grader'"),
    (["--teacher", "embedding:/no/such/model"], "grader embedding:/no/such/model"),
    (["--teacher", "overlap", "--loss", "lambda"], "--teacher distils the teacher's score margins (loss margin-mse): drop --loss lambda"),
    (["--teacher", "overlap", "--max-rows", "1"], "--max-rows"),
])
def test_bad_teacher_options_are_one_line_before_the_corpus_is_read(tmp_path, teachers, extra, message):
    r = run("train", "reranker", "--corpus", f"beir:{tmp_path / 'missing'}", "--out", tmp_path / "rr", *extra)
    assert r.exit_code == 2, r.output
    assert message in r.output and "missing" not in r.output


@pytest.mark.parametrize("teacher", [["--teacher", "overlap"], []], ids=["margin-mse", "bce"])
def test_max_rows_caps_the_training_rows(corpus, student, tmp_path, teachers, teacher):
    out = tmp_path / "rr"
    r = run("train", "reranker", "--corpus", f"beir:{corpus}", "--pairs-from", "synthetic", *teacher,
            "--from", student, "--out", out, "--max-rows", "6", "--batch-size", "4", "--calibration-pairs", "4")
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["rows"] == 6 and manifest["metrics"]["steps"] == 2
    assert manifest["metrics"]["training_pairs"] > 6 and manifest["metrics"]["cpu_seconds"] >= 0
    assert (manifest["teacher"] or {}).get("rows") == (6 if teacher else None)
