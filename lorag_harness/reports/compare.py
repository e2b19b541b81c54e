"""Read saved results (``lorag bench --out x.json``, pytest baselines, folders of baselines) and
compare two of them metric by metric, with paired tests where both hold per-unit data on the same
units (pairs or queries)."""
from __future__ import annotations

import html as h
import json
from dataclasses import dataclass, field
from pathlib import Path

from lorag_harness.errors import LoragError
from lorag_harness.evaluation.preflight import read_json
from lorag_harness.api.task import TaskResult
from lorag_harness.evaluation.runner import BenchResult
from lorag_harness.evaluation.stats import Metric, delong, mcnemar_exact, paired_randomization

BASELINE_TASK = "baseline"  # the task name a pytest baseline file is shown under
NOT_PAIRED = {"label", "score", "query_ids", "y", "yhat"}  # per-unit data that are not a metric of their own


def _baseline(path: Path, data: dict) -> BenchResult:
    try:
        metrics = {k: Metric.from_dict(v, k) for k, v in data["metrics"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise LoragError(f"{path}: not a pytest baseline file ({type(e).__name__}: {e})") from None
    test = str(data.get("test") or path.stem)
    return BenchResult(f"pytest baseline {path.name}", "", [test], [BASELINE_TASK],
                       {BASELINE_TASK: {test: TaskResult(metrics)}}, {}, {})


def load_results(path: str | Path) -> BenchResult:
    """A bench result (``lorag bench --out x.json``), a pytest baseline file, or a folder of baselines."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise LoragError(f"{path}: a folder without .json files (expected pytest baselines)")
        merged = BenchResult(f"pytest baselines {path.name}/", "", [], [BASELINE_TASK], {BASELINE_TASK: {}}, {}, {})
        for f in files:
            one = _baseline(f, read_json(f))
            merged.graders += one.graders
            merged.results[BASELINE_TASK].update(one.results[BASELINE_TASK])
        return merged
    data = read_json(path)
    if "results" not in data and "metrics" in data:
        return _baseline(path, data)
    if "results" not in data:
        raise LoragError(f"{path}: not a lorag results file (no 'results': write one with lorag bench --out x.json; "
                         "pytest baselines have 'metrics')")
    try:
        return BenchResult.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise LoragError(f"{path}: not a lorag results file ({type(e).__name__}: {e})") from None


def units(result: TaskResult) -> list | None:
    """Ids of the units the per-unit lists (``paired``) are over: query ids or pair ids, if known."""
    if "query_ids" in result.paired:
        return list(result.paired["query_ids"])
    ids = [r.get("pair_id", r.get("query_id")) for r in result.records]
    return ids if ids and all(i is not None for i in ids) else None


def _aligned(a: TaskResult, b: TaskResult, key: str):
    """``(a values, b values)`` over the units both hold, in a's order; None when they do not match."""
    va, vb, ua, ub = a.paired.get(key), b.paired.get(key), units(a), units(b)
    if va is None or vb is None or ua is None or ub is None or len(va) != len(ua) or len(vb) != len(ub):
        return None
    if len(set(ua)) != len(ua) or set(ua) != set(ub):
        return None
    pos = {u: i for i, u in enumerate(ub)}
    return list(va), [vb[pos[u]] for u in ua]


def paired_tests(a: TaskResult, b: TaskResult) -> dict[str, dict]:
    """metric -> test of B against A on the same units: McNemar for per-unit booleans (correct → accuracy),
    a paired randomization test for per-unit numbers, DeLong on the scores (→ roc_auc)."""
    out = {}
    for key in a.paired:
        if key in NOT_PAIRED or key.startswith("first_stage_"):
            continue
        got = _aligned(a, b, key)
        if got is None or not got[0]:
            continue
        va, vb = got
        if all(isinstance(v, bool) for v in va + vb):
            test = mcnemar_exact(vb, va) | {"effect": f"only B {sum(y and not x for x, y in zip(va, vb))} / "
                                                      f"only A {sum(x and not y for x, y in zip(va, vb))}"}
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in va + vb):
            test = paired_randomization(vb, va)
            test["effect"] = f"Δ {test['mean_diff']:+.3f} ({test['low']:+.2f}–{test['high']:+.2f})"
        else:
            continue
        metric = key
        if key == "correct":
            metric = "accuracy" if "accuracy" in a.metrics else "relevance_agreement"
        out[metric] = test | {"on": key, "n": len(va)}
    la, lb = _aligned(a, b, "label"), _aligned(a, b, "score")
    if la is not None and lb is not None and la[0] == la[1]:
        d = delong(la[0], lb[1], lb[0])
        out["roc_auc"] = d | {"effect": f"Δ {d['mean_diff']:+.3f} ({d['low']:+.2f}–{d['high']:+.2f})", "n": len(la[0])}
    return out


@dataclass
class Comparison:
    a: str
    b: str
    a_dataset: str
    b_dataset: str
    rows: list[dict] = field(default_factory=list)  # task, a_grader, b_grader, metric, a, b, delta, better, test
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def m(x):
            return x.to_dict() if isinstance(x, Metric) else x
        return {"a": self.a, "b": self.b, "a_dataset": self.a_dataset, "b_dataset": self.b_dataset, "notes": self.notes,
                "rows": [{k: m(v) for k, v in r.items()} for r in self.rows]}


def _pairs_of(ra: dict, rb: dict) -> list[tuple[str, str]]:
    """Graders matched by name; a lone grader on each side is matched whatever its name."""
    same = [(g, g) for g in ra if g in rb]
    if same:
        return same
    if len(ra) == 1 and len(rb) == 1:
        return [(next(iter(ra)), next(iter(rb)))]
    return []


def compare(a: BenchResult, b: BenchResult, a_name: str = "A", b_name: str = "B") -> Comparison:
    comp = Comparison(a_name, b_name, a.dataset, b.dataset)
    if a.dataset_fingerprint and b.dataset_fingerprint and a.dataset_fingerprint != b.dataset_fingerprint:
        comp.notes.append(f"the datasets differ ({a.dataset} vs {b.dataset}, or the same name with other data or "
                          "options): values are compared, paired tests only where the units' ids match")
    tasks = [t for t in a.results if t in b.results] or (
        [(ta, tb) for ta in a.results for tb in b.results] if len(a.results) == 1 == len(b.results) else [])
    if not tasks:
        raise LoragError(f"{a_name} and {b_name} share no task (A: {', '.join(a.results) or 'none'}; "
                         f"B: {', '.join(b.results) or 'none'})")
    for t in tasks:
        ta, tb = (t, t) if isinstance(t, str) else t
        ra, rb = a.results[ta], b.results[tb]
        matched = _pairs_of(ra, rb)
        left = sorted(set(ra) - {x for x, _ in matched}), sorted(set(rb) - {y for _, y in matched})
        if left[0] or left[1]:
            comp.notes.append(f"{ta}: not in both, not compared: " + "; ".join(
                f"{side} only: {', '.join(names)}" for side, names in zip((a_name, b_name), left) if names))
        for ga, gb in matched:
            tests = paired_tests(ra[ga], rb[gb])
            if not tests:
                why = "no per-unit data" if not ra[ga].paired or not rb[gb].paired else "the units differ"
                comp.notes.append(f"{ta} · {ga}: no paired test ({why}): intervals only")
            for metric in list(dict.fromkeys([*ra[ga].metrics, *rb[gb].metrics])):
                ma, mb = ra[ga].metrics.get(metric), rb[gb].metrics.get(metric)
                delta = (mb.value - ma.value) if ma is not None and mb is not None and ma.value is not None \
                    and mb.value is not None else None
                direction = (ma or mb).better
                verdict = None
                if delta is not None and direction is not None and delta != 0:
                    verdict = "better" if (delta > 0) == (direction == "higher") else "worse"
                comp.rows.append({"task": ta if ta == tb else f"{ta} / {tb}", "grader": ga if ga == gb else f"{ga} → {gb}",
                                  "metric": metric, "a": ma, "b": mb, "delta": delta, "direction": direction,
                                  "change": verdict, "test": tests.get(metric)})
    return comp


def _v(m: Metric | None) -> str:
    return "–" if m is None else m.plain()


def _delta(r: dict) -> str:
    if r["delta"] is None:
        return "–"
    d = r["delta"]
    return (f"{d:+g}" if isinstance(d, int) else f"{d:+.3f}") + (f" ({r['change']})" if r["change"] else "")


def _p(r: dict) -> str:
    t = r["test"]
    return "" if t is None else f"{t['test']} p={t['p_value']:.3g}"


HEADER = ("task", "grader", "metric", "A", "B", "Δ (B − A)", "paired test")


def table_rows(comp: Comparison) -> list[list[str]]:
    return [[r["task"], r["grader"], r["metric"], _v(r["a"]), _v(r["b"]), _delta(r), _p(r)] for r in comp.rows]


def markdown(comp: Comparison) -> str:
    lines = [f"# lorag-harness comparison", "", f"- A: `{comp.a}` ({comp.a_dataset})", f"- B: `{comp.b}` ({comp.b_dataset})", "",
             "| " + " | ".join(HEADER) + " |", "|---|---|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table_rows(comp)]
    lines.append("")
    lines += [f"Note: {n}" for n in comp.notes]
    lines.append("Δ is B − A; (better)/(worse) by the metric's direction, whatever the p-value; paired tests of B "
                 "against A on the same units (McNemar on per-pair correctness, DeLong on ROC-AUC, paired "
                 "randomization on per-query values).")
    return "\n".join(lines) + "\n"


def html(comp: Comparison) -> str:
    from lorag_harness.reports.html import CSS

    head = "".join(f"<th>{h.escape(c)}</th>" for c in HEADER)
    body = ""
    for r, row in zip(comp.rows, table_rows(comp)):
        cls = {"better": "best", "worse": "worse"}.get(r["change"] or "", "")
        significant = r["test"] is not None and r["test"]["p_value"] < 0.05
        cells = [f"<td>{h.escape(c)}</td>" for c in row[:5]]
        cells.append(f'<td class="{cls}">{h.escape(row[5])}</td>')
        cells.append(f"<td>{'<b>' if significant else ''}{h.escape(row[6])}{'</b>' if significant else ''}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    notes = "".join(f"<p>Note: {h.escape(n)}</p>" for n in comp.notes)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>lorag-harness comparison</title>"
            f"<style>{CSS}.worse{{color:#b42318}}</style></head><body><h1>lorag-harness comparison</h1>"
            f"<p>A: {h.escape(comp.a)} ({h.escape(comp.a_dataset)})<br>B: {h.escape(comp.b)} ({h.escape(comp.b_dataset)})</p>"
            f"<table><tr>{head}</tr>{body}</table>{notes}<p>Δ is B − A; better/worse by the metric's direction, "
            f"whatever the p-value; p &lt; 0.05 in bold.</p></body></html>")


def render(comp: Comparison, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(comp.to_dict(), indent=2, default=str)
    if fmt == "markdown":
        return markdown(comp)
    if fmt == "html":
        return html(comp)
    raise LoragError(f"unknown format {fmt!r}: json, markdown or html")
