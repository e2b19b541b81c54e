"""`lorag grade --executor ray:ADDRESS`: the address is checked before any model loads, reaching it is
bounded by --ray-timeout, and a failed run leaves nothing beside --out."""
import json
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from lorag_harness.cli.app import cli

pytest.importorskip("ray", reason="Ray is not installed (pip install 'lorag-harness[ray]')")


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"query": "oil", "document": f"oil story {i}"}) + "\n" for i in range(4)))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "pairs.jsonl")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":6379", "host:1/x"])
def test_a_malformed_address_is_refused_before_the_grader_is_built(address, pairs, tmp_path):
    # the adapter folder does not exist either: the address is named first
    result = CliRunner().invoke(cli, ["grade", "-g", f"s1:{tmp_path / 'missing'}", "--in", str(pairs), "--out",
                                      str(tmp_path / "out.jsonl"), "--executor", f"ray:{address}", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert f"--executor ray:{address}: expected ray:HOST:PORT" in result.output and "missing" not in result.output
    assert leftovers(tmp_path) == []


def test_nothing_listening_is_one_line_before_work_and_leaves_no_manifest(pairs, tmp_path):
    port = closed_port()
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["grade", "-g", f"s1:{tmp_path / 'missing'}", "--in", str(pairs), "--out",
                                      str(tmp_path / "out.jsonl"), "--executor", f"ray:127.0.0.1:{port}", "--no-cache"])
    assert time.monotonic() - start < 30
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"ray:127.0.0.1:{port}: cannot connect" in lines[0], result.output
    assert leftovers(tmp_path) == []


@pytest.mark.integration  # waits for Ray's timeout
def test_an_endpoint_that_is_not_ray_is_given_up_after_the_timeout(pairs, tmp_path, tiny_model_dir):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel, nothing ever answers
    port = silent.getsockname()[1]
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "lorag_harness", "grade", "-g", "base", "--base-model", tiny_model_dir,
            "--max-doc-tokens", "16", "--in", str(pairs), "--out", str(out), "--no-cache",
            "--executor", f"ray:127.0.0.1:{port}", "--ray-timeout", "3"]
    try:
        start = time.monotonic()
        proc = subprocess.run(args, capture_output=True, text=True, timeout=240)
        took = time.monotonic() - start
    finally:
        silent.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "within 3 s (--ray-timeout)" in proc.stderr and "Traceback" not in proc.stderr
    assert took < 180
    assert leftovers(tmp_path) == []
