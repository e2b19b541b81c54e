"""The HTML report in a real browser (headless Chromium, Debian's `chromium`): at 1280 px no table
overflows, every chart is there and drawn, and no "best" mark sits on a metric without a direction,
on a tie, or on a recall that a grader saying "relevant" to everything wins."""
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from beir_fixtures import write_beir

from lorag_harness.data.beir import load_beir
from lorag_harness.reports.files import render
from lorag_harness.api.types import Judgment
from lorag_harness.reports.common import charts
from lorag_harness.evaluation.runner import BenchResult
from lorag_harness.tasks.judge_agreement import JudgeAgreement
from lorag_harness.tasks.rerank import Rerank
from lorag_harness.tasks.s1_relevance import S1Relevance

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const tables = [...document.querySelectorAll("table")].map(t => {
    const head = [...t.querySelector("tr").children].map(c => c.textContent.trim());
    let h = t.previousElementSibling; while (h && !/^H[23]$/.test(h.tagName)) h = h.previousElementSibling;
    const best = [...t.querySelectorAll("td.best")].map(td => ({
      column: head[td.cellIndex], row: td.parentElement.children[0].textContent.trim()}));
    return {title: h ? h.textContent : "", right: t.getBoundingClientRect().right, scroll: t.scrollWidth,
            width: t.clientWidth, head, best};
  });
  const imgs = [...document.querySelectorAll("img")].map(im => ({
    drawn: im.complete && im.naturalWidth > 50 && im.naturalHeight > 50, right: im.getBoundingClientRect().right}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({vw, page: document.documentElement.scrollWidth, tables, imgs});
  document.body.appendChild(out);
});
</script>"""


def in_browser(page: str, folder: Path, width: int = 1280) -> dict:
    """The page with a test-only probe script, loaded in headless Chromium; the probe's findings."""
    probe = folder / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                               f"--window-size={width},900", "--virtual-time-budget=5000", "--dump-dom",
                               probe.as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    start = done.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    import html

    return json.loads(html.unescape(done.stdout[start:done.stdout.index("</pre>", start)]))


def _result(tmp_path) -> BenchResult:
    """Three graders on a tiny collection, through the real tasks: one says "relevant" to everything,
    one is good but misses a relevant pair, one is noisy; long grader names."""
    ds = load_beir(str(write_beir(tmp_path / "c")), {"train_fraction": 0.25, "seed": 3})
    # judged-only evaluation pairs are mostly relevant here: add judged negatives, so that saying "relevant" to
    # everything is not as accurate as a good grader
    ds.eval_pairs = ds.eval_pairs + [p for p in ds.train_pairs if not p.label][:3]
    missed = next(p.pair_id for p in ds.eval_pairs if p.label)

    def judge_of(fn):
        return lambda pairs, reasons=False: [fn(p) for p in pairs]

    graders = {
        "always-yes (base)": judge_of(lambda p: Judgment(True, 0.9)),
        "s1:runs/demo/adapters/s1": judge_of(lambda p: Judgment(p.label and p.pair_id != missed,
                                                                0.8 if p.label and p.pair_id != missed else 0.3)),
        "cross-encoder:runs/demo/models/reranker-with-a-long-name": judge_of(
            lambda p: Judgment(len(p.document) % 2 == 0, (len(p.document) % 7) / 7)),
    }
    tasks = [S1Relevance(calibrate="isotonic"), Rerank(k=5), JudgeAgreement(k=10, systems="bm25")]
    results = {t.name: {g: t.run(ds, j) for g, j in graders.items()} for t in tasks}
    return BenchResult(ds.name, ds.fingerprint(), list(graders), [t.name for t in tasks], results,
                       {t.name: t.compare(results[t.name]) for t in tasks}, {g: {t.name: 1.5 for t in tasks} for g in graders})


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_in_headless_chromium(tmp_path):
    result = _result(tmp_path)
    s1 = result.results["s1-relevance"]
    assert s1["always-yes (base)"].metrics["recall"].value == 1.0 > s1["s1:runs/demo/adapters/s1"].metrics["recall"].value
    found = in_browser(render(result, "html"), tmp_path)
    assert found["page"] <= found["vw"], "the page scrolls sideways"
    for t in found["tables"]:
        assert t["right"] <= found["vw"] + 0.5 and t["scroll"] <= t["width"] + 1, (t["title"], t["head"])
    want = sum(len(charts(result, task)) for task in result.tasks)
    assert want >= 5 and len(found["imgs"]) == want
    assert all(im["drawn"] and im["right"] <= found["vw"] + 0.5 for im in found["imgs"])
    best = {(t["title"], b["column"]): b["row"] for t in found["tables"] for b in t["best"]}
    directions = {m: metric.better for r in s1.values() for m, metric in r.metrics.items()}
    for (title, column), row in best.items():
        metric = column.replace("\u200b", "")
        if title in ("s1-relevance",):
            assert directions.get(metric) is not None, f"best mark on {metric}, which has no direction"
    assert ("s1-relevance", "recall") not in best  # won by the grader that says yes to everything
    assert ("s1-relevance", "positive_rate") not in best and ("s1-relevance", "parse_failures") not in best  # no direction; a tie
    assert ("rerank", "recall@5") not in best  # the same candidates for every row: a tie
    assert best[("s1-relevance", "accuracy")] == "s1:runs/demo/adapters/s1"  # marks still appear where earned
