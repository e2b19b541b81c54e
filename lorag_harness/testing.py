"""Conformance checks for grader plug-ins, to run in the plug-in's own tests:

    from lorag_harness.testing import check_grader

    def test_my_grader_keeps_the_contract():
        check_grader(MyGrader())
"""
from __future__ import annotations

from typing import Sequence

from lorag_harness.api.grader import check_batch, grade_checked
from lorag_harness.errors import LoragError
from lorag_harness.api.types import REASON_FIELDS, Pair

SAMPLE_PAIRS = (
    Pair("crude oil prices", "Oil prices rose as crude stocks fell in the United States.", True, "crude oil", "crude oil"),
    Pair("crude oil prices", "The central bank cut its lending rate by half a point.", False, "crude oil", "interest rates"),
    Pair("interest rates", "The central bank cut its lending rate by half a point.", True, "interest rates", "interest rates"),
    Pair("interest rates", "Wheat and corn shipments to Egypt doubled this year.", False, "interest rates", "grain"),
    Pair("grain exports", "Wheat and corn shipments to Egypt doubled this year, traders in Chicago said on Monday.", True,
         "grain", "grain"),
    Pair("grain exports", "Oil prices rose as crude stocks fell.", False, "grain", "crude oil"),
)


def contract_problems(grader, pairs: Sequence[Pair] | None = None, *, reasons: bool = True,
                      deterministic: bool = True) -> list[str]:
    """Every way ``grader`` breaks the grader contract (empty: none)."""
    pairs = list(pairs or SAMPLE_PAIRS)
    problems: list[str] = []
    if not isinstance(getattr(grader, "name", None), str) or not grader.name.strip():
        problems.append("name: must be a non-empty str")
    if not callable(getattr(grader, "grade", None)):
        return problems + ["grade: missing"]
    try:
        first_fp = _fingerprint(grader)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return problems + [f"fingerprint(): raised {type(e).__name__}: {e}"]

    runs = {}
    for with_reasons in (False, True) if reasons else (False,):
        done = []
        try:
            out = grader.grade(pairs, reasons=with_reasons, advance=done.append)
            runs[with_reasons] = check_batch(grader, pairs, out)
        except LoragError as e:
            problems.append(f"grade(reasons={with_reasons}): {e}")
            continue
        except Exception as e:  # noqa: BLE001
            problems.append(f"grade(reasons={with_reasons}) raised {type(e).__name__}: {e}")
            continue
        if sum(done) != len(pairs):
            problems.append(f"grade(reasons={with_reasons}): advance() counted {sum(done)} pairs for {len(pairs)}")
        if with_reasons:
            for i, j in enumerate(runs[True]):
                if j.reason is not None and not all(isinstance(j.reason.get(k), str) for k in REASON_FIELDS):
                    problems.append(f"grade(reasons=True): judgment {i} reason lacks string fields {REASON_FIELDS}")
                    break

    if False in runs:
        try:
            empty = grader.grade([], reasons=False, advance=None)
            if list(empty) != []:
                problems.append(f"grade([]): returned {len(empty)} judgments, expected none")
        except Exception as e:  # noqa: BLE001
            problems.append(f"grade([]) raised {type(e).__name__}: {e}")
        try:
            backwards = grade_checked(grader, pairs[::-1])
            if deterministic and [j.relevant for j in backwards[::-1]] != [j.relevant for j in runs[False]]:
                problems.append("grade(): decisions change with the order of the pairs (judgments out of order, "
                                "or the grader is not deterministic: pass deterministic=False)")
        except Exception as e:  # noqa: BLE001
            problems.append(f"grade(reversed pairs): {type(e).__name__}: {e}")
    try:
        if _fingerprint(grader) != first_fp:
            problems.append("fingerprint(): changed after grading (the cache key must not depend on lazy state)")
    except Exception as e:  # noqa: BLE001
        problems.append(f"fingerprint(): raised {type(e).__name__} after grading: {e}")
    return problems


def _fingerprint(grader) -> str:
    fp = grader.fingerprint() if hasattr(grader, "fingerprint") else None
    if not isinstance(fp, str) or not fp:
        raise TypeError(f"fingerprint() must return a non-empty str, not {fp!r}")
    if fp != grader.fingerprint():
        raise ValueError("fingerprint() is not stable between two calls")
    return fp


def check_grader(grader, pairs: Sequence[Pair] | None = None, *, reasons: bool = True, deterministic: bool = True) -> None:
    """Raise ``AssertionError`` listing every contract problem of ``grader`` on ``pairs``
    (default: six small labelled pairs): output count, order and types, ``advance`` totals,
    reasons, an empty batch, fingerprint stability."""
    problems = contract_problems(grader, pairs, reasons=reasons, deterministic=deterministic)
    if problems:
        label = getattr(grader, "name", None) or type(grader).__name__
        raise AssertionError(f"grader {label} breaks the contract:\n  " + "\n  ".join(problems))
