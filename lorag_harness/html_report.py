"""A self-contained HTML report: tables, confusion matrices, reliability curves, a P@k chart,
paired tests and per-example disagreements (matplotlib PNGs embedded as data URIs)."""
from __future__ import annotations

import base64
import html as h
import io

import numpy as np

from .export import effect
from .runner import BenchResult

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.ci{color:#888;font-size:85%}.best{font-weight:bold;color:#1a7f37}img{max-width:100%;margin:0.5em 0}.doc{text-align:left;max-width:40em}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _cell(m, best: bool) -> str:
    if m.value is None:
        return "<td>–</td>"
    v = f"{m.value:g}" if isinstance(m.value, int) else f"{m.value:.3f}"
    ci = f' <span class="ci">({m.low:.2f}–{m.high:.2f})</span>' if m.low is not None else ""
    return f'<td class="{"best" if best else ""}">{v}{ci}</td>'


def metric_table(result: BenchResult, task: str) -> str:
    from .report import _best

    by = result.results[task]
    metrics = list(next(iter(by.values())).metrics) if by else []
    best = {m: _best({g: r.metrics[m] for g, r in by.items()}, m) for m in metrics}
    head = "".join(f"<th>{h.escape(m)}</th>" for m in metrics)
    rows = "".join(f"<tr><td>{h.escape(g)}</td>" + "".join(_cell(r.metrics[m], best[m] == g) for m in metrics) + "</tr>"
                   for g, r in by.items())
    return f"<h2>{h.escape(task)}</h2><table><tr><th>grader</th>{head}</tr>{rows}</table>"


def confusion_and_reliability(result: BenchResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix

    by = result.results.get("s1-relevance", {})
    if not by:
        return ""
    fig, axes = plt.subplots(1, len(by), figsize=(3.2 * len(by), 3), squeeze=False)
    rel_fig, rel_ax = plt.subplots(figsize=(4.5, 4))
    rel_ax.plot([0, 1], [0, 1], ":", color="grey")
    for ax, (grader, r) in zip(axes[0], by.items()):
        y = [bool(x["label"]) for x in r.records]
        yhat = [bool(x["relevant"]) for x in r.records]
        cm = confusion_matrix(y, yhat, labels=[False, True])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set(title=grader, xticks=[0, 1], yticks=[0, 1], xticklabels=["not", "rel"], yticklabels=["not", "rel"],
               xlabel="predicted", ylabel="label")
        scores = [x["score"] for x in r.records]
        if all(s is not None for s in scores) and len(set(y)) == 2:
            frac, mean = calibration_curve(y, scores, n_bins=8, strategy="quantile")
            rel_ax.plot(mean, frac, "o-", label=grader)
    rel_ax.set(xlabel="mean P(relevant)", ylabel="fraction relevant", title="reliability", xlim=(0, 1), ylim=(0, 1))
    rel_ax.legend(fontsize=8)
    return "<h2>Confusion matrices (s1-relevance)</h2>" + _png(fig) + "<h2>Reliability</h2>" + _png(rel_fig)


def precision_at_k(result: BenchResult, kmax: int = 10) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = result.results.get("rag-p5", {})
    if not by or not all("graded_rels" in x for r in by.values() for x in r.records):
        return ""  # no results, or a report written before rankings were recorded
    ks = np.arange(1, kmax + 1)

    def curve(lists):
        return [np.mean([sum(r[:k]) / k for r in lists]) for k in ks]

    fig, ax = plt.subplots(figsize=(5, 3.5))
    first = next(iter(by.values()))
    ax.plot(ks, curve([x["retriever_rels"] for x in first.records]), "k--", label="retriever")
    for grader, r in by.items():
        ax.plot(ks, curve([x["graded_rels"] for x in r.records]), "o-", label=grader)
    ax.set(xlabel="k", ylabel="P@k", title="precision at k (rag-p5)", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return "<h2>P@k</h2>" + _png(fig)


def comparisons(result: BenchResult) -> str:
    rows = "".join(f"<tr><td>{h.escape(t)}</td><td>{h.escape(c['a'])}</td><td>{h.escape(c['b'])}</td><td>{c['test']}</td>"
                   f"<td>{h.escape(effect(c))}</td><td>{c['p_value']:.3g}</td></tr>"
                   for t, cs in result.comparisons.items() for c in cs)
    if not rows:
        return ""
    return ("<h2>Paired tests</h2><table><tr><th>task</th><th>a</th><th>b</th><th>test</th><th>effect</th><th>p</th></tr>"
            + rows + "</table>")


def disagreements(result: BenchResult, limit: int = 30) -> str:
    by = result.results.get("s1-relevance", {})
    if len(by) < 2:
        return ""
    graders = list(by)
    rows = []
    for i, rec in enumerate(next(iter(by.values())).records):
        decisions = [by[g].records[i]["relevant"] for g in graders]
        if len(set(decisions)) > 1:
            cells = "".join(f"<td>{'✔' if by[g].records[i]['relevant'] == rec['label'] else '✘'} "
                            f"{by[g].records[i]['score'] if by[g].records[i]['score'] is None else round(by[g].records[i]['score'], 2)}</td>"
                            for g in graders)
            rows.append(f"<tr><td>{h.escape(rec['pair_id'])}</td><td class='doc'>{h.escape(rec['query'])}</td>"
                        f"<td class='doc'>{h.escape(rec.get('document', ''))}</td><td>{rec['label']}</td>{cells}</tr>")
    head = "".join(f"<th>{h.escape(g)}</th>" for g in graders)
    return (f"<h2>Disagreements (s1-relevance): {len(rows)} pairs</h2><table><tr><th>pair</th><th>query</th>"
            f"<th>document</th><th>label</th>{head}</tr>{''.join(rows[:limit])}</table>")


def html(result: BenchResult) -> str:
    body = "".join(metric_table(result, t) for t in result.tasks)
    body += comparisons(result) + confusion_and_reliability(result) + precision_at_k(result) + disagreements(result)
    title = f"lorag-harness · {h.escape(result.dataset)}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
            f"<body><h1>{title}</h1><p>Graders: {h.escape(', '.join(result.graders))}. Values with 95% intervals "
            f"(Wilson for rates, bootstrap otherwise).</p>{body}</body></html>")
