"""No silent inversion: calibration pairs that rank negatives above positives stop the run before
grading, and a grader ranking candidates below a random order is reported loudly (exit 3)."""
import itertools
import json

import numpy as np
import pytest
from beir_fixtures import write_beir
from click.testing import CliRunner

from lorag_harness import hookimpl
from lorag_harness.retrieval import metrics as ranking
from lorag_harness.evaluation.calibration import InvertedPairs, auc_interval, check_direction, direction
from lorag_harness.cli.app import cli
from lorag_harness.api.types import Judgment
from lorag_harness.retrieval.random_order import expected_random_ndcg


def test_expected_random_ndcg_is_the_mean_over_every_order():
    judged = {"a": 2, "b": 1, "x": 3, "n": 0}  # "x" is relevant but not among the candidates
    cands = ["a", "b", "c", "n", "d"]
    measure = {"ndcg@10": ranking.STANDARD["ndcg@10"]}
    values = [ranking.per_query(measure, {"q": judged}, {"q": list(p)})["ndcg@10"]["q"] for p in itertools.permutations(cands)]
    assert expected_random_ndcg(judged, cands) == pytest.approx(np.mean(values), abs=1e-12)
    many = [f"d{i}" for i in range(14)] + ["a"]  # more candidates than the cut-off
    sample = np.random.default_rng(0)
    est = np.mean([ranking.per_query(measure, {"q": judged}, {"q": list(sample.permutation(many))})["ndcg@10"]["q"]
                   for _ in range(3000)])
    assert expected_random_ndcg(judged, many) == pytest.approx(est, abs=0.01)


def test_auc_and_its_delong_interval():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = rng.normal(size=300) + 0.4 * y
    s[:20] = 0.0  # ties count half
    auc, low, high = auc_interval(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    boot = [roc_auc_score(y[i], s[i]) for i in (rng.integers(0, 300, 300) for _ in range(2000))]
    assert low == pytest.approx(np.percentile(boot, 2.5), abs=0.02) and high == pytest.approx(np.percentile(boot, 97.5), abs=0.02)
    assert check_direction(direction(y, s) | {"slope": 1.0}, "p", "s", "fix") is None
    with pytest.raises(InvertedPairs, match=r"^training pairs of p rank negatives above positives by s \(AUC 0\.\d\d, 95% CI"):
        check_direction(direction(y, -s), "p", "s", "fix")
    with pytest.raises(InvertedPairs, match="do not separate positives from negatives.*fitted slope -0.10"):
        check_direction(direction(y, s) | {"slope": -0.1}, "p", "s", "fix")


TOPICS = ["apple orchard", "whale ocean", "railway train", "telescope star", "river bridge", "piano concert",
          "soccer goal", "coffee bean", "volcano lava", "castle knight"]


def topical_collection(root, train_inverted=False):
    """Three documents per topic; each topic's query judges two of them relevant. With ``train_inverted``,
    the training queries judge their on-topic documents not relevant (grade 0) and an off-topic one
    relevant: negatives that look relevant, as unjudged top-ranked documents often are."""
    docs, queries, test, train = {}, {}, [], []
    for t, topic in enumerate(TOPICS):
        a, b = topic.split()
        for i, text in enumerate([f"The {a} and the {b}.", f"A long story about a {a} near the {b}.",
                                  f"Notes on {b} and {a} today."]):
            docs[f"d{t}_{i}"] = (f"{a} {i}", text)
        queries[f"q{t}"] = f"{a} {b}"
        queries[f"t{t}"] = f"where is the {a} with the {b}"
        test += [(f"q{t}", f"d{t}_0", 1), (f"q{t}", f"d{t}_1", 1)]
        if train_inverted:
            train += [(f"t{t}", f"d{t}_0", 0), (f"t{t}", f"d{t}_1", 0), (f"t{t}", f"d{(t + 5) % 10}_2", 1),
                      (f"t{t}", f"d{(t + 3) % 10}_2", 1)]
        else:
            train += [(f"t{t}", f"d{t}_0", 1), (f"t{t}", f"d{t}_1", 1), (f"t{t}", f"d{(t + 5) % 10}_2", 0),
                      (f"t{t}", f"d{(t + 3) % 10}_2", 0)]
    return write_beir(root, qrels={"test": test, "train": train}, splits=("test", "train"), docs=docs, queries=queries)


def test_training_pairs_with_relevant_looking_negatives_stop_the_run_before_grading(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path / "cache"))
    root = topical_collection(tmp_path / "c", train_inverted=True)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", "-d", f"beir:{root}",
                                      "--rerank-k", "6", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip() and not x.startswith(("Loading weights", "note: "))]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output  # the data's notes, then one line
    line = lines[0]
    print(line)
    assert line.startswith(f"error: training pairs of beir:{root} (qrels/train.tsv) rank negatives above positives")
    assert "AUC 0." in line and "95% CI" in line and "use judged negatives" in line
    assert not out.exists()  # nothing graded, nothing written

    honest = topical_collection(tmp_path / "h")
    ok = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "embedding", "-t", "rerank", "-d", f"beir:{honest}",
                                  "--rerank-k", "6"])
    assert ok.exit_code == 0, ok.output


def overlap(pair) -> float:
    return float(len(set(pair.query.lower().split()) & set(pair.document.lower().strip(".").replace(".", " ").split())))


class OverlapGraders:
    """Plug-in graders: word overlap as the score (``overlap``) and its negative (``inverted``)."""

    @hookimpl
    def register_graders(self, register):
        def make(sign):
            class G:
                name = "overlap" if sign > 0 else "inverted"

                def grade(self, pairs, *, reasons=False, advance=None):
                    return [Judgment(relevant=sign * overlap(p) > 0, score=sign * overlap(p)) for p in pairs]

            return lambda arg, ctx: G()

        register("overlap", make(1))
        register("inverted", make(-1))


@pytest.fixture
def overlap_plugin(register_plugin):
    register_plugin(OverlapGraders(), "overlap-graders")


def test_a_grader_ranking_below_a_random_order_is_reported_and_exits_3(tmp_path, overlap_plugin):
    root = topical_collection(tmp_path / "c")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["bench", "--no-cache", "-g", "overlap,inverted", "-t", "rerank", "-d", f"beir:{root}", "--rerank-k", "20"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert "WORSE THAN RANDOM: inverted ranks the bm25@20 candidates below a random order" in result.output
    assert "WORSE THAN RANDOM: overlap" not in result.output
    report = json.loads(out.read_text())
    assert len(report["alerts"]) == 1 and "inverted" in report["alerts"][0]
    random_rows = {c["a"]: c for c in report["comparisons"]["rerank"] if c["b"] == "random order"}
    assert random_rows["inverted"]["mean_diff"] < 0 < random_rows["overlap"]["mean_diff"]
    assert random_rows["inverted"]["p_value"] < 0.05

    allowed = CliRunner().invoke(cli, [*args, "--allow-worse-than-random", "--out", str(md)])
    assert allowed.exit_code == 0, allowed.output
    assert "WORSE THAN RANDOM: inverted" in allowed.output and "WORSE THAN RANDOM: inverted" in md.read_text()

    fine = CliRunner().invoke(cli, ["bench", "--no-cache", "-g", "overlap", "-t", "rerank", "-d", f"beir:{root}",
                                    "--rerank-k", "20"])
    assert fine.exit_code == 0 and "WORSE THAN RANDOM" not in fine.output


def test_a_trained_model_that_ranks_its_calibration_pairs_upside_down_is_refused(tmp_path):
    from conftest import make_tiny_bert

    folder = make_tiny_bert(tmp_path / "rr")
    (tmp_path / "rr" / "manifest.json").write_text(json.dumps({"calibration": {
        "on": "training", "pairs": 200, "threshold": 0.4, "auc": 0.31, "auc_low": 0.24, "auc_high": 0.38}}))
    result = CliRunner().invoke(cli, ["bench", "-g", f"cross-encoder:{folder}", "-t", "s1-relevance", "--eval-pairs", "8",
                                      "--train-pairs", "8", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert (f"error: {folder}: the model ranks its training calibration pairs upside down (AUC 0.31, 95% CI 0.24–0.38 "
            "on 200 pairs)") in result.output
    (tmp_path / "rr" / "manifest.json").write_text(json.dumps({"calibration": {
        "on": "training", "pairs": 200, "threshold": 0.4, "auc": 0.45, "auc_low": 0.37, "auc_high": 0.53}}))
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader

    assert CrossEncoderGrader(folder).threshold == 0.4  # not significantly inverted: graded (and reported as it is)
