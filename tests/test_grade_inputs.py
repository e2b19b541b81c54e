"""`lorag grade` and `lorag bench --out` under hostile use: duplicate ids, a bad input found before the
grader is built, an earlier output kept until the new one is complete, files lorag did not write."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lorag_harness import hookimpl
from lorag_harness.api import Grader, Judgment
from lorag_harness.cli.app import cli
from test_grade import grade, make_rows, overlap, read_out, write_jsonl  # noqa: F401 - the overlap fixture


class Boom(Grader):
    """Relevant when the document mentions oil; raises on a document that says boom."""

    name = "boom"

    def grade(self, pairs, *, reasons=False, advance=None):
        if any("boom" in p.document for p in pairs):
            raise RuntimeError("the grader's server went away")
        return [Judgment("oil" in p.document, 1.0 if "oil" in p.document else 0.0) for p in pairs]


class BoomPlugin:
    @hookimpl
    def register_graders(self, register):
        register("boom", lambda arg, ctx: Boom())


@pytest.fixture
def boom(register_plugin):
    register_plugin(BoomPlugin(), "boom-test")


# --- duplicate ids -----------------------------------------------------------------------------------

def test_repeated_ids_are_refused_before_work_naming_the_rows(tmp_path, overlap):  # noqa: F811
    rows = make_rows(6)
    rows[0]["id"], rows[4]["id"] = "a", "a"
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "j.jsonl"
    r = grade("-g", "overlap", "--in", src, "--out", out)
    assert r.exit_code == 2, r.output
    assert f"{src}:5: id 'a' is also the id of row 1" in r.output
    assert not overlap.exists() and not out.exists() and not (tmp_path / "j.jsonl.manifest.json").exists()


def test_an_explicit_id_may_not_take_another_rows_line_number(tmp_path, overlap):  # noqa: F811
    rows = make_rows(6)
    rows[4]["id"] = 2  # line 2 has no id: its id is "2"
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    r = grade("-g", "overlap", "--in", src, "--out", tmp_path / "j.jsonl")
    assert r.exit_code == 2 and f"{src}:5: id '2' is also the id of row 2" in r.output, r.output
    assert "row without an id takes its row number" in r.output


def test_a_null_parquet_id_colliding_with_an_explicit_one_is_refused(tmp_path, overlap):  # noqa: F811
    src = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"id": [None, "1", "x"], "query": ["oil", "oil", "oil"],
                             "document": ["oil a", "oil b", "rates c"]}), src)
    r = grade("-g", "overlap", "--in", src, "--out", tmp_path / "j.parquet")
    assert r.exit_code == 2 and f"{src}:2: id '1' is also the id of row 1" in r.output, r.output


def test_a_bad_row_is_found_before_the_grader_is_built(tmp_path):
    rows = make_rows(40)
    rows[37] = {"query": "oil", "document": ""}
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    # the adapter does not exist: building the grader would fail with another message
    r = grade("-g", f"s1:{tmp_path / 'missing'}", "--in", src, "--out", tmp_path / "j.jsonl")
    assert r.exit_code == 2 and f"{src}:38: field 'document' is empty" in r.output, r.output
    assert "missing" not in r.output


# --- earlier outputs kept until the new one is complete -----------------------------------------------

def finished(tmp_path, name="j.jsonl", n=40):
    src = write_jsonl(tmp_path / "good.jsonl", make_rows(n))
    out = tmp_path / name
    r = grade("-g", "overlap", "--in", src, "--out", out)
    assert r.exit_code == 0, r.output
    return out, {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(name)}


def test_force_with_a_bad_new_input_keeps_the_finished_output(tmp_path, overlap):  # noqa: F811
    out, before = finished(tmp_path)
    rows = make_rows(40)
    rows[24] = {"query": "oil"}
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    r = grade("-g", "overlap", "--in", bad, "--out", out, "--force", "--chunk-size", 8)
    assert r.exit_code == 2 and f"{bad}:25: missing field 'document'" in r.output, r.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("j.jsonl")} == before


@pytest.mark.parametrize("name", ["j.jsonl", "j.parquet"])
def test_force_with_a_grader_failing_midway_brings_the_earlier_output_back(tmp_path, overlap, boom, name):  # noqa: F811
    out, before = finished(tmp_path, name)
    rows = make_rows(40)
    rows[30]["document"] = "boom"
    new = write_jsonl(tmp_path / "new.jsonl", rows)
    r = grade("-g", "boom", "--in", new, "--out", out, "--force", "--chunk-size", 8, "--part-rows", 8)
    assert r.exit_code == 1 and "the grader's server went away" in r.output, r.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(name)} == before
    rows[30]["document"] = "oil again"
    fixed = write_jsonl(tmp_path / "new.jsonl", rows)
    r = grade("-g", "boom", "--in", fixed, "--out", out, "--force", "--chunk-size", 8, "--part-rows", 8)
    assert r.exit_code == 0, r.output
    assert len(read_out(out)) == 40 and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(name)) == \
        [name, f"{name}.manifest.json"]


def test_a_garbage_last_line_of_an_earlier_output_names_the_file_and_line(tmp_path, overlap):  # noqa: F811
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(12))
    out = tmp_path / "j.jsonl"
    assert grade("-g", "overlap", "--in", src, "--out", out, "--chunk-size", 4).exit_code == 0
    manifest = tmp_path / "j.jsonl.manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "finished": False}))  # as if killed after writing
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:5] + ['{"id": "6", "relev']) + "\n")
    r = grade("-g", "overlap", "--in", src, "--out", out)
    assert r.exit_code == 2 and f"{out}:6: not a judgment line (invalid JSON" in r.output, r.output


# --- bench --out ------------------------------------------------------------------------------------

def test_bench_does_not_overwrite_a_file_lorag_did_not_write(tmp_path, overlap):  # noqa: F811
    data = write_jsonl(tmp_path / "pairs.jsonl", [{**r, "label": i % 2 == 0} for i, r in enumerate(make_rows(12))])
    out = tmp_path / "results.json"
    out.write_text('{"my": "numbers"}')
    args = ["bench", "-g", "overlap", "-t", "s1-relevance", "-d", f"jsonl:{data}", "--no-cache", "--out", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "is not a lorag report; pass --force" in r.output, r.output
    assert out.read_text() == '{"my": "numbers"}' and not overlap.exists()
    assert CliRunner().invoke(cli, args + ["--force"]).exit_code == 0
    assert "dataset_fingerprint" in json.loads(out.read_text())
    again = CliRunner().invoke(cli, args)  # a report of its own is replaced
    assert again.exit_code == 0, again.output
