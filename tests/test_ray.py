"""`lorag grade --executor ray` on a real local Ray cluster: the same output as the local executor."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.integration  # a local Ray cluster

from lorag_harness.cli.app import cli

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lorag-harness[ray]')")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local cluster with 2 CPUs for the whole test run; `lorag grade` joins it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


TOPICS = ["crude oil prices", "interest rates", "grain exports", "coffee harvest"]


def rows(n):
    out = []
    for i in range(n):
        doc = f"Traders said {TOPICS[(i * 3) % 4]} moved on day {i}." if i % 2 else f"The {TOPICS[i % 4]} report {i}."
        out.append({"query": TOPICS[i % 4], "document": doc, **({"label": i % 4 == 1} if i % 3 else {})})
    return out


def write_jsonl(path, data):
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def grade(*args):
    return CliRunner().invoke(cli, ["grade", "--no-cache", *map(str, args)])


def read(path):
    if str(path).endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in open(path)]


def assert_same(local, distributed):
    assert [r["id"] for r in distributed] == [r["id"] for r in local]
    assert [r["relevant"] for r in distributed] == [r["relevant"] for r in local]
    assert [r["score"] for r in distributed] == pytest.approx([r["score"] for r in local], abs=1e-6)


def test_ray_equals_local_for_the_embedding_grader(tmp_path, ray_cluster):
    train = write_jsonl(tmp_path / "train.jsonl", [{**r, "label": i % 2 == 0} for i, r in
                                                   enumerate({"query": TOPICS[i % 4], "document": f"{TOPICS[(i + i % 2) % 4]} news"}
                                                             for i in range(24))])
    src = write_jsonl(tmp_path / "pairs.jsonl", rows(40))
    common = ("-g", "embedding", "-d", f"jsonl:{train}", "--in", src, "--chunk-size", 8)
    r = grade(*common, "--out", tmp_path / "local.jsonl")
    assert r.exit_code == 0, r.output
    r = grade(*common, "--out", tmp_path / "ray.jsonl", "--executor", "ray", "--actors", 2)
    assert r.exit_code == 0, r.output
    local, distributed = read(tmp_path / "local.jsonl"), read(tmp_path / "ray.jsonl")
    assert len(local) == 40 and {True, False} <= {r["relevant"] for r in local}
    assert_same(local, distributed)


def test_ray_equals_local_for_the_tiny_lm_on_parquet(tmp_path, ray_cluster, tiny_model_dir):
    src = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": f"p{i}", **r} for i, r in enumerate(rows(24))]), src, row_group_size=7)
    common = ("-g", "base", "--base-model", tiny_model_dir, "--in", src, "--max-doc-tokens", 24, "--chunk-size", 6)
    assert grade(*common, "--out", tmp_path / "local.parquet").exit_code == 0
    r = grade(*common, "--out", tmp_path / "ray.parquet", "--executor", "ray", "--actors", 1)
    assert r.exit_code == 0, r.output
    local, distributed = read(tmp_path / "local.parquet"), read(tmp_path / "ray.parquet")
    assert [r["id"] for r in local] == [f"p{i}" for i in range(24)]
    assert_same(local, distributed)


def test_ray_reports_a_bad_row_by_number(tmp_path, ray_cluster, tiny_model_dir):
    data = rows(30)
    data[22] = {"query": "oil", "document": ["not", "text"]}
    src = write_jsonl(tmp_path / "pairs.jsonl", data)
    r = grade("-g", "base", "--base-model", tiny_model_dir, "--in", src, "--out", tmp_path / "j.jsonl",
              "--executor", "ray", "--chunk-size", 5)
    assert r.exit_code == 2, r.output
    assert f"{src}:23: field 'document' must be a string, not list" in r.output
    assert "Traceback" not in r.output and "RayTaskError" not in r.output
