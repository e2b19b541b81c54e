"""The typed grader contract: Judgment validation, the runner's batch check, check_grader."""
import pytest

from lorag_harness import Grader, GraderError, Judgment
from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.evaluation.runner import make_judge
from lorag_harness.testing import SAMPLE_PAIRS, check_grader, contract_problems


class Fixed(Grader):
    def __init__(self, drop: int = 0, extra: int = 0, value=True):
        self.name, self.drop, self.extra, self.value = "fixed", drop, extra, value

    def grade(self, pairs, *, reasons=False, advance=None):
        out = [Judgment(relevant=p.label, score=float(p.label)) for p in pairs]
        out = out[: len(out) - self.drop] + [Judgment(True)] * self.extra
        if advance:
            advance(len(pairs))
        return out


@pytest.mark.parametrize("kwargs, message", [
    ({"relevant": "no"}, "relevant must be True, False or None"),
    ({"relevant": 1}, "relevant must be True, False or None"),
    ({"relevant": True, "score": float("nan")}, "score must be finite"),
    ({"relevant": True, "score": "0.3"}, "score must be a number"),
    ({"relevant": True, "reason": "because"}, "reason must be a dict"),
])
def test_judgment_refuses_wrong_types(kwargs, message):
    with pytest.raises(GraderError, match=message):
        Judgment(**kwargs)


def test_undecided_judgment_is_a_parse_failure():
    assert Judgment(None).parse_ok is False


@pytest.mark.parametrize("drop, extra, message", [(1, 0, "returned 5 judgments for 6 pairs"),
                                                  (0, 1, "returned 7 judgments for 6 pairs")])
def test_runner_refuses_a_short_or_long_batch_and_stores_nothing(drop, extra, message):
    cache = JudgmentCache(":memory:")
    judge = make_judge(Fixed(drop, extra), cache, chunk_size=32)
    with pytest.raises(GraderError, match=message):
        judge(list(SAMPLE_PAIRS))
    assert cache.count() == 0


def test_check_grader_passes_a_good_grader_and_lists_problems_of_a_bad_one():
    check_grader(Fixed())
    problems = contract_problems(Fixed(drop=1))
    assert any("returned 5 judgments for 6 pairs" in p for p in problems)

    class Sorted(Fixed):  # loses the order of the pairs
        def grade(self, pairs, *, reasons=False, advance=None):
            return super().grade(sorted(pairs, key=lambda p: p.document), reasons=reasons, advance=advance)

    with pytest.raises(AssertionError, match="decisions change with the order"):
        check_grader(Sorted())

    class Miscounts(Fixed):
        def grade(self, pairs, *, reasons=False, advance=None):
            return super().grade(pairs, reasons=reasons, advance=lambda n: advance(2 * n) if advance else None)

    with pytest.raises(AssertionError, match=r"advance\(\) counted 12 pairs for 6"):
        check_grader(Miscounts())


def test_default_fingerprint_covers_class_distribution_and_arguments():
    a, b = Fixed(drop=0), Fixed(drop=1)
    assert a.fingerprint() == Fixed(drop=0).fingerprint() != b.fingerprint()

    class Holder(Fixed):
        def __init__(self, thing):
            super().__init__()
            self.thing = thing

    with pytest.raises(GraderError, match="override fingerprint"):
        Holder(object()).fingerprint()


def test_builtin_embedding_grader_keeps_the_contract(r8_small):
    from lorag_harness.graders.embedding import EmbeddingGrader

    check_grader(EmbeddingGrader(train_pairs=r8_small.train_pairs, topics=r8_small.topics))


def test_builtin_lm_grader_keeps_the_contract(tiny_model_dir):
    from lorag_harness.graders.lm_graders import LMGrader

    check_grader(LMGrader("base", base_model=tiny_model_dir, max_new_tokens=8, max_doc_tokens=32))


def test_default_fingerprint_changes_when_the_plugin_source_changes(tmp_path, monkeypatch):
    import importlib
    import sys

    source = ("from lorag_harness import Grader, Judgment\n"
              "class G(Grader):\n    name = 'g'\n"
              "    def grade(self, pairs, *, reasons=False, advance=None):\n        return [Judgment(%s) for p in pairs]\n")
    (tmp_path / "edited_plugin.py").write_text(source % "True")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = importlib.import_module("edited_plugin").G().fingerprint()
    (tmp_path / "edited_plugin.py").write_text(source % "False")
    del sys.modules["edited_plugin"]
    assert importlib.import_module("edited_plugin").G().fingerprint() != first


def test_an_invalid_judgment_made_inside_a_plugin_names_the_grader():
    class Says(Fixed):
        def grade(self, pairs, *, reasons=False, advance=None):
            return [Judgment(relevant="yes") for _ in pairs]

    with pytest.raises(GraderError, match=r"^grader fixed: Judgment.relevant must be True, False or None, not 'yes'$"):
        make_judge(Says(), JudgmentCache(":memory:"), chunk_size=32)(list(SAMPLE_PAIRS))
