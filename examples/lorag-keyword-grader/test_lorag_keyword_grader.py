from lorag_harness.testing import SAMPLE_PAIRS, check_grader

from lorag_keyword_grader import KeywordGrader


def test_keyword_grader_keeps_the_contract():
    check_grader(KeywordGrader())
    check_grader(KeywordGrader(min_overlap=2), pairs=SAMPLE_PAIRS[:2])
