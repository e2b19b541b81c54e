"""A judge that answers nothing is a failed run (non-zero exit, marked partial, the cause in one line),
never a 0.500 figure; a judge that fails on some requests gives a figure with a note saying so.
Judges talk to a scripted server on 127.0.0.1 (every reply bounded in time)."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import loopback_http

pytest.importorskip("openai")

from click.testing import CliRunner  # noqa: E402

from lorag_harness.cli.app import cli  # noqa: E402

GOOD = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"relevant": true}'},
                     "finish_reason": "stop"}]}
FAULTS = {
    "500": (500, "application/json", b'{"error": {"message": "boom"}}'),
    "400": (400, "application/json", b'{"error": {"message": "prompt rejected"}}'),
    "html": (200, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "empty-choices": (200, "application/json", json.dumps({**GOOD, "choices": []}).encode()),
    "truncated": (200, "application/json", json.dumps(GOOD).encode()[:40]),
}


class Stub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        mode = "ok" if body.get("model") == "ok" else self.server.mode
        if mode == "some" and "wheat" not in json.dumps(body):  # the wheat pairs fail
            mode = "ok"
        if mode == "some":
            mode = "500"
        if mode == "timeout":
            time.sleep(1.5)  # the judge gives up after 0.5 s
            mode = "ok"
        status, kind, data = FAULTS.get(mode, (200, "application/json", json.dumps(GOOD).encode()))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def stub():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    srv.mode = "ok"
    with loopback_http(srv) as url:
        yield srv, url


@pytest.fixture
def pairs_file(tmp_path, jsonl_writer):
    rows = [{"query": f"news about {t}", "document": f"a report on {d} markets, number {i}", "label": t == d}
            for i in range(2) for t in ("oil", "grain") for d in ("oil", "grain", "wheat")]
    return jsonl_writer(tmp_path / "pairs.jsonl", rows)


def bench(data, url, out, *extra):
    return CliRunner().invoke(cli, ["bench", "-g", "openai:m", "-t", "s1-relevance", "-d", f"jsonl:{data}",
                                    "--no-cache", "--judge-base-url", url, "--judge-retries", "0", "--judge-timeout",
                                    "0.5", "--out", str(out), *extra])


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: nothing listens there


@pytest.mark.parametrize("mode", ["unreachable", "500", "400", "html", "empty-choices", "truncated", "timeout"])
def test_a_judge_that_answers_nothing_fails_the_run(mode, stub, pairs_file, tmp_path):
    srv, url = stub
    srv.mode = mode
    out = tmp_path / "report.json"
    start = time.monotonic()
    result = bench(pairs_file, closed_port_url() if mode == "unreachable" else url, out)
    assert time.monotonic() - start < 60
    assert result.exit_code == 2, result.output
    assert "0.500" not in result.output
    assert "PARTIAL RESULTS" in result.output and "no usable judgment" in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "openai:m" in error[0], result.output
    assert not out.exists()  # nothing finished: no report


def test_with_another_grader_the_report_is_written_partial(stub, pairs_file, tmp_path):
    srv, url = stub
    srv.mode = "500"  # for model m; model "ok" is answered
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["bench", "-g", "openai:ok,openai:m", "-t", "s1-relevance", "-d",
                                      f"jsonl:{pairs_file}", "--no-cache", "--judge-base-url", url,
                                      "--judge-retries", "0", "--out", str(out)])
    assert result.exit_code == 2, result.output
    report = json.loads(out.read_text())
    assert list(report["results"]["s1-relevance"]) == ["openai:ok"]
    assert report["partial"]["grader"] == "openai:m" and "no usable judgment" in report["partial"]["error"]


def test_some_failed_requests_are_a_report_note(stub, pairs_file, tmp_path):
    srv, url = stub
    srv.mode = "some"
    out = tmp_path / "report.json"
    result = bench(pairs_file, url, out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert "partial" not in report
    notes = [n for n in report.get("notes", []) if "requests failed" in n]
    assert len(notes) == 1 and notes[0].startswith("openai:m · s1-relevance: ") and "InternalServerError" in notes[0]


def test_grade_with_a_judge_that_answers_nothing_fails_and_writes_nothing(stub, pairs_file, tmp_path, monkeypatch):
    srv, url = stub
    srv.mode = "400"
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    out = tmp_path / "judgments.jsonl"
    result = CliRunner().invoke(cli, ["grade", "-g", "openai:m", "--in", str(pairs_file), "--out", str(out),
                                      "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "no usable judgment" in result.output
    assert not out.exists() or out.read_text() == ""
