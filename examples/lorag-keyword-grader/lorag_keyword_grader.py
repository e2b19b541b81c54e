"""Keyword-overlap grader: the example plug-in of the README and docs/plugins.md."""
import re

from lorag_harness import Grader, Judgment, LoragError, hookimpl


class KeywordGrader(Grader):
    def __init__(self, min_overlap: int = 1):
        self.name, self.min_overlap = f"keyword:{min_overlap}", min_overlap

    def grade(self, pairs, *, reasons=False, advance=None):
        out = []
        for p in pairs:
            query = set(re.findall(r"[a-z]{3,}", p.query.lower()))
            hits = len(query & set(re.findall(r"[a-z]{3,}", p.document.lower())))
            out.append(Judgment(relevant=hits >= self.min_overlap, score=hits / max(len(query), 1)))
        if advance:
            advance(len(pairs))
        return out


def make_keyword(arg, context):
    if arg is not None and not arg.isdigit():
        raise LoragError(f"grader keyword:{arg}: the argument is the minimum overlap, a whole number (keyword:2)")
    return KeywordGrader(int(arg or 1))


@hookimpl
def register_graders(register):
    register("keyword", make_keyword, "Keyword overlap (example plug-in)")
