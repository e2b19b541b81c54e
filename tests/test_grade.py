"""`lorag grade`: streamed grading of a pairs file, written from the user's side (CLI)."""
import json
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lorag_harness import hookimpl
from lorag_harness.api.grader import Grader, Judgment, Pair
from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.cli.app import cli
from conftest import word_overlap
from lorag_harness.testing import check_grader



class Overlap(Grader):
    """Share of query words found in the document; logs every pair it grades."""

    def __init__(self, log: str = ""):
        self.name, self.log = "overlap", log

    def grade(self, pairs, *, reasons=False, advance=None):
        out = []
        for p in pairs:
            share = word_overlap(p.query, p.document, 3)
            reason = {"query_topic": p.query, "document_topic": "", "summary": p.document[:20]} if reasons else None
            out.append(Judgment(relevant=share >= 0.5, score=share, reason=reason))
        if self.log:
            with open(self.log, "a") as fh:
                fh.write("".join(f"{p.query}|{p.document}\n" for p in pairs))
        if advance:
            advance(len(pairs))
        return out


class OverlapPlugin:
    def __init__(self, log=""):
        self.log = log

    @hookimpl
    def register_graders(self, register):
        register("overlap", lambda arg, ctx: Overlap(self.log))


@pytest.fixture
def overlap(tmp_path, register_plugin):
    """The overlap grader registered for in-process CLI runs; its log file."""
    log = tmp_path / "graded.log"
    register_plugin(OverlapPlugin(str(log)), "overlap-test")
    return log


def make_rows(n, labelled=True):
    topics = ["crude oil prices", "interest rates", "grain exports", "coffee harvest"]
    rows = []
    for i in range(n):
        q = topics[i % 4]
        d = f"news {i}: {topics[(i // 4) % 4]} moved today" if i % 3 else f"report {i} on shipping"
        row = {"query": q, "document": d}
        if labelled and i % 2:
            row["label"] = i % 4 == 1
        rows.append(row)
    return rows


def write_jsonl(path, rows, blank_after=None):
    with open(path, "w") as fh:
        for i, r in enumerate(rows):
            fh.write(json.dumps(r) + "\n")
            if i == blank_after:
                fh.write("\n")
    return path


def grade(*args):
    return CliRunner().invoke(cli, ["grade", "--no-cache", *map(str, args)])


def read_out(path):
    if str(path).endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in open(path)]


def test_overlap_grader_keeps_the_contract():
    check_grader(Overlap())


def test_grade_jsonl_ids_unlabelled_rows_and_reasons(tmp_path, overlap):
    rows = make_rows(30)
    rows[4]["id"] = "doc-4"
    rows[6]["id"] = 606
    src = write_jsonl(tmp_path / "pairs.jsonl", rows, blank_after=9)  # line 11 is blank
    out = tmp_path / "out" / "judged.jsonl"
    r = grade("-g", "overlap", "--in", src, "--out", out, "--reasons", "--chunk-size", 7)
    assert r.exit_code == 0, r.output
    assert "30 judgments" in r.output
    got = read_out(out)
    lines = [i + 1 if i < 10 else i + 2 for i in range(30)]  # ids default to line numbers
    want_ids = [str(n) for n in lines]
    want_ids[4], want_ids[6] = "doc-4", "606"
    assert [g["id"] for g in got] == want_ids
    direct = Overlap().grade([Pair(r["query"], r["document"], None) for r in rows], reasons=True)
    assert [(g["relevant"], g["score"], g["reason"]) for g in got] == [(j.relevant, j.score, j.reason) for j in direct]
    assert any(g["relevant"] for g in got) and not all(g["relevant"] for g in got)
    manifest = json.loads((tmp_path / "out" / "judged.jsonl.manifest.json").read_text())
    assert manifest["finished"] and manifest["rows"] == 30 and manifest["grader"] == "overlap"

    again = grade("-g", "overlap", "--in", src, "--out", out, "--reasons")
    assert again.exit_code == 0 and "already complete (30 judgments)" in again.output
    assert read_out(out) == got


def test_grade_parquet_in_parts_equals_jsonl(tmp_path, overlap):
    rows = make_rows(45, labelled=False)
    src = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=10)
    jsonl_src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    r = grade("-g", "overlap", "--in", src, "--out", tmp_path / "j.parquet", "--chunk-size", 4, "--part-rows", 8)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "j.parquet.parts").exists()  # parts combined and removed
    assert pq.ParquetFile(tmp_path / "j.parquet").metadata.num_row_groups == 6  # one row group per part
    assert grade("-g", "overlap", "--in", jsonl_src, "--out", tmp_path / "j.jsonl").exit_code == 0
    got, ref = read_out(tmp_path / "j.parquet"), read_out(tmp_path / "j.jsonl")
    assert [g["id"] for g in got] == [str(i) for i in range(1, 46)]
    assert got == ref


def test_parquet_run_stopped_midway_resumes_from_its_parts(tmp_path, overlap):
    """A grader failing midway keeps the finished part files; the rerun grades only the rest."""
    rows = make_rows(40, labelled=False)
    src = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=16)
    out = tmp_path / "j.parquet"
    calls = {"n": 0}
    real = Overlap.grade

    def failing(self, pairs, **kw):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("worker lost")
        return real(self, pairs, **kw)

    Overlap.grade = failing
    try:
        r = grade("-g", "overlap", "--in", src, "--out", out, "--chunk-size", 4, "--part-rows", 8)
    finally:
        Overlap.grade = real
    assert r.exit_code != 0 and "worker lost" in r.output
    assert sorted(p.name for p in (tmp_path / "j.parquet.parts").iterdir()) == [
        "part-000000000000-000000008.parquet", "part-000000000008-000000008.parquet"]
    overlap.write_text("")
    r = grade("-g", "overlap", "--in", src, "--out", out, "--chunk-size", 4, "--part-rows", 8)
    assert r.exit_code == 0, r.output
    assert "resumed after 16" in r.output
    assert len(overlap.read_text().splitlines()) == 24  # only the rows after the parts
    assert [g["id"] for g in read_out(out)] == [str(i) for i in range(1, 41)]


def test_a_line_cut_by_a_kill_is_truncated_and_the_run_continues(tmp_path, overlap):
    rows = make_rows(20)
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "j.jsonl"
    full = tmp_path / "full.jsonl"
    assert grade("-g", "overlap", "--in", src, "--out", full).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    manifest = json.loads((tmp_path / "full.jsonl.manifest.json").read_text())
    out.write_text("".join(lines[:7]) + lines[7][:15])  # what a kill during the 2nd chunk's write leaves
    (tmp_path / "j.jsonl.manifest.json").write_text(json.dumps({**manifest, "finished": False}))
    r = grade("-g", "overlap", "--in", src, "--out", out)
    assert r.exit_code == 0 and "resumed after 7" in r.output, r.output
    assert out.read_text() == full.read_text()
    assert len(overlap.read_text().splitlines()) == 20 + 13  # the full run, then rows 8-20 only


SLOW = r'''
import sys, time
from lorag_harness import hookimpl
from lorag_harness.api.grader import Grader, Judgment, Pair
from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.plugins import pm
from lorag_harness.cli.app import cli

class Slow(Grader):
    def __init__(self, log):
        self.name, self.log = "slow", log
    def grade(self, pairs, *, reasons=False, advance=None):
        out = []
        for p in pairs:
            time.sleep(0.05)
            out.append(Judgment(len(p.document) % 3 == 0, (len(p.document) % 10) / 10))
        with open(self.log, "a") as fh:  # after grading, before the cache and the output
            fh.write("".join(p.pair_id + "\n" for p in pairs))
        return out

class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("slow", lambda arg, ctx: Slow(sys.argv[1]))

pm.register(Plugin(), name="slow")
cli(["grade", "-g", "slow", *sys.argv[2:]])
'''


@pytest.mark.integration  # kills a real grade process
def test_killed_grade_resumes_without_loss_or_repeats(tmp_path):
    n = 200
    rows = make_rows(n)
    for i, r in enumerate(rows):
        r["document"] += " " + "x" * (i % 7)
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    script, log, out = tmp_path / "run.py", tmp_path / "graded.log", tmp_path / "j.jsonl"
    script.write_text(SLOW)
    args = [sys.executable, str(script), str(log), "--in", str(src), "--out", str(out), "--chunk-size", "10",
            "--cache", str(tmp_path / "c.sqlite")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 40):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = log.read_text().split()
    text = out.read_text() if out.exists() else ""
    written = text[: text.rfind("\n") + 1].splitlines()  # complete lines (a kill may cut the last)
    stored = JudgmentCache(tmp_path / "c.sqlite").count()
    assert 40 <= len(first) < n, "killed midway"
    assert len(written) >= len(first) - 10 and stored >= len(first) - 10  # at most the chunk in flight is lost

    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resumed after {len(written)}" in done.stdout
    second = log.read_text().split()[len(first):]
    assert not set(second) & set(first[:stored]), "a stored judgment was made again"
    assert sorted(set(first) | set(second)) == sorted(str(i) for i in range(1, n + 1))  # nothing lost
    final = read_out(out)
    assert [j["id"] for j in final] == [str(i) for i in range(1, n + 1)]  # each row once, in order
    slow_decision = [len(r["document"]) % 3 == 0 for r in rows]
    assert [j["relevant"] for j in final] == slow_decision


def test_bad_rows_are_numbered_before_any_work(tmp_path, overlap):
    rows = make_rows(12)
    rows[8] = {"query": "oil", "text": "no document field"}
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "j.jsonl"
    r = grade("-g", "overlap", "--in", src, "--out", out, "--chunk-size", 4)
    assert r.exit_code == 2
    assert f"{src}:9: missing field 'document'" in r.output and "Traceback" not in r.output
    assert not overlap.exists() and not out.exists()  # every row is checked before the grader runs

    bad = tmp_path / "bad.parquet"
    rows = make_rows(6, labelled=False)
    rows[3]["query"] = "  "
    pq.write_table(pa.Table.from_pylist(rows), bad)
    r = grade("-g", "overlap", "--in", bad, "--out", tmp_path / "b.jsonl")
    assert r.exit_code == 2 and f"{bad}:4: field 'query' is empty" in r.output

    for text, msg in (('{"query": "q", "document": "d", "label": "maybe"}', "unknown label 'maybe'"),
                      ('{"query": "q", "document": 5}', "field 'document' must be a string"),
                      ('{"query": "q", "document": "d", "id": [1]}', "field 'id' must be a string or an integer"),
                      ('{"query": "q", "document": "d"', "invalid JSON")):
        f = tmp_path / "one.jsonl"
        f.write_text('{"query": "q", "document": "d"}\n' + text + "\n")
        r = grade("-g", "overlap", "--in", f, "--out", tmp_path / "one-out.jsonl", "--force")
        assert r.exit_code == 2 and f"{f}:2: {msg}" in r.output, r.output


def test_output_checked_before_any_work(tmp_path, overlap):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(8))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    linked = tmp_path / "linked.jsonl"  # the input under another name
    linked.hardlink_to(src)
    cases = [
        (["--out", blocker / "j.jsonl"], "cannot write there"),
        (["--out", tmp_path / "j.csv"], "unknown format '.csv'"),
        (["--out", src], "is the input file"),
        (["--out", linked, "--force"], "is the input file"),
        (["--out", tmp_path / "j.jsonl", "--executor", "spark"], "expected local, ray or ray:ADDRESS"),
        (["--out", tmp_path / "j.jsonl", "--actors", "3"], "apply to --executor ray only"),
        (["--out", tmp_path / "j.jsonl", "--num-gpus", "1"], "apply to --executor ray only"),
        (["--out", tmp_path / "j.jsonl", "--in", tmp_path / "missing.jsonl"], "file not found"),
    ]
    for args, msg in cases:
        r = grade("-g", "overlap", "--in", src, *args)
        assert r.exit_code == 2 and msg in r.output, (args, r.output)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    r = grade("-g", "overlap", "--in", empty, "--out", tmp_path / "j.jsonl")
    assert r.exit_code == 2 and f"{empty}: no rows" in r.output
    r = grade("-g", "nope", "--in", src, "--out", tmp_path / "j.jsonl")
    assert r.exit_code == 2 and "unknown grader 'nope'" in r.output
    assert not overlap.exists()  # nothing was graded

    no_doc = tmp_path / "nodoc.parquet"
    pq.write_table(pa.table({"query": ["a"], "text": ["b"]}), no_doc)
    r = grade("-g", "overlap", "--in", no_doc, "--out", tmp_path / "j.jsonl")
    assert r.exit_code == 2 and "no column 'document' (columns: query, text)" in r.output


def test_output_of_other_work_is_not_overwritten_without_force(tmp_path, overlap):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(8))
    out = tmp_path / "j.jsonl"
    out.write_text("precious\n")
    r = grade("-g", "overlap", "--in", src, "--out", out)
    assert r.exit_code == 2 and "was not written by lorag grade; pass --force" in r.output
    assert out.read_text() == "precious\n"
    assert grade("-g", "overlap", "--in", src, "--out", out, "--force").exit_code == 0
    assert len(read_out(out)) == 8

    other = write_jsonl(tmp_path / "other.jsonl", make_rows(9))
    r = grade("-g", "overlap", "--in", other, "--out", out)
    assert r.exit_code == 2 and "holds finished work with another input" in r.output
    r = grade("-g", "overlap", "--in", src, "--out", out, "--reasons")
    assert r.exit_code == 2 and "--reasons" in r.output
    assert len(read_out(out)) == 8


def test_missing_ray_is_one_line(tmp_path, overlap, monkeypatch):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(4))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    r = grade("-g", "overlap", "--in", src, "--out", tmp_path / "j.jsonl", "--executor", "ray")
    assert r.exit_code == 2 and "pip install 'lorag-harness[ray]'" in r.output
    assert not (tmp_path / "j.jsonl").exists()
