"""A self-contained HTML report: each task's table, the charts and tables its task class declares
(matplotlib PNGs embedded as data URIs), and the paired tests."""
from __future__ import annotations

import base64
import html as h
import io

from lorag_harness.reports.common import VALUES_NOTE, best, charts, columns, effect, rows, tables
from lorag_harness.evaluation.runner import BenchResult

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}table{font-size:92%}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.ci{color:#888;font-size:78%;display:block;white-space:nowrap}.best{font-weight:bold;color:#1a7f37}img{max-width:100%;margin:0.5em 0}
.doc{text-align:left;max-width:40em;overflow-wrap:anywhere}table{max-width:100%}td:first-child{min-width:9em;max-width:18em;overflow-wrap:anywhere}
th{font-size:90%}"""


def _header(name: str) -> str:
    """A metric name that may break after its underscores (long names stay narrow)."""
    return h.escape(name).replace("_", "_<wbr>")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _cell(m, is_best: bool) -> str:
    if m is None or m.value is None:
        return "<td>–</td>"
    v = f"{m.value:g}" if isinstance(m.value, int) else f"{m.value:.3f}"
    ci = f' <span class="ci">({m.low:.2f}–{m.high:.2f})</span>' if m.low is not None else ""
    return f'<td class="{"best" if is_best else ""}">{v}{ci}</td>'


def metric_table(result: BenchResult, task: str) -> str:
    table_rows = rows(result, task)
    metrics = columns(table_rows)
    top = {m: best(table_rows, m) for m in metrics}
    head = "".join(f"<th>{_header(m)}</th>" for m in metrics) + "<th>s</th>"
    body = "".join(f"<tr><td>{h.escape(r.label)}</td>" + "".join(_cell(r.metrics.get(m), top[m] == r.label) for m in metrics)
                   + f"<td>{'' if r.seconds is None else f'{r.seconds:.1f}'}</td></tr>" for r in table_rows)
    return f"<h2>{h.escape(task)}</h2><table><tr><th>grader</th>{head}</tr>{body}</table>"


def task_extras(result: BenchResult, task: str) -> str:
    out = "".join(f"<h3>{h.escape(title)}</h3>{_png(fig)}" for title, fig in charts(result, task))
    for title, header, body in tables(result, task):
        head = "".join(f"<th>{h.escape(str(c))}</th>" for c in header)
        cells = "".join("<tr>" + "".join(f"<td class='doc'>{h.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
        out += f"<h3>{h.escape(title)}</h3><table><tr>{head}</tr>{cells}</table>"
    return out


def comparisons(result: BenchResult) -> str:
    body = "".join(f"<tr><td>{h.escape(t)}</td><td>{h.escape(c['a'])}</td><td>{h.escape(c['b'])}</td>"
                   f"<td>{h.escape(c['test'])}</td><td>{h.escape(effect(c))}</td><td>{c['p_value']:.3g}</td></tr>"
                   for t, cs in result.comparisons.items() for c in cs)
    if not body:
        return ""
    return ("<h2>Paired tests</h2><table><tr><th>task</th><th>a</th><th>b</th><th>test</th><th>effect</th><th>p</th></tr>"
            + body + "</table>")


def html(result: BenchResult) -> str:
    body = "".join(metric_table(result, t) + task_extras(result, t) for t in result.tasks) + comparisons(result)
    body = "".join(f"<p style='color:#b00;font-weight:bold'>{h.escape(a)}</p>" for a in result.alerts) + body
    title = f"lorag-harness · {h.escape(result.dataset)}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
            f"<body><h1>{title}</h1><p>Graders: {h.escape(', '.join(result.graders))}. Values: {h.escape(VALUES_NOTE)}; "
            f"best per column in green.</p>{body}</body></html>")
