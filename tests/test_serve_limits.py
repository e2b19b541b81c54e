"""`lorag serve` under hostile use: oversized bodies (413), clients that hang up, empty fields, the API
key, the bound port."""
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx2")

from click.testing import CliRunner  # noqa: E402

from lorag_harness.api import Grader  # noqa: E402
from lorag_harness.cli.app import cli  # noqa: E402
from lorag_harness.errors import LoragError  # noqa: E402
from lorag_harness.api.types import Judgment  # noqa: E402
from lorag_harness.serving.command import serving  # noqa: E402
from lorag_harness.serving.app import create_app  # noqa: E402


class Slow(Grader):
    """Sleeps per call; records every pair it grades."""

    name = "slow"

    def __init__(self, seconds=0.0):
        self.seconds, self.graded, self.lock = seconds, [], threading.Lock()

    def grade(self, pairs, *, reasons=False, advance=None):
        time.sleep(self.seconds)
        with self.lock:
            self.graded += [p.document for p in pairs]
        return [Judgment("oil" in p.document, 0.9 if "oil" in p.document else 0.1) for p in pairs]


def chat_body(document, query="oil"):
    return {"model": "slow", "max_tokens": 4, "messages": [{"role": "user", "content": f"Document: {document}\nQuery: {query}"}]}


def test_a_body_over_the_limit_gets_413_and_the_server_goes_on():
    grader = Slow()
    with serving(create_app(grader, "slow", max_request_mb=0.5)) as url:
        big = {"query": "oil", "documents": ["oil " * 100] * 2000}  # about 0.8 MB
        r = httpx.post(f"{url}/v1/rerank", json=big, timeout=30)
        assert r.status_code == 413 and "--max-request-mb" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: read up to the limit, then refused
            for _ in range(80):
                yield b" " * 10_000
            yield json.dumps({"query": "oil", "documents": ["a"]}).encode()

        r = httpx.post(f"{url}/v1/rerank", content=chunks(), timeout=30, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert grader.graded == []
        ok = httpx.post(f"{url}/v1/rerank", json={"query": "oil", "documents": ["oil price", "rates"]}, timeout=30)
        assert ok.status_code == 200 and [x["index"] for x in ok.json()["results"]] == [0, 1]


def test_a_client_that_hangs_up_has_its_queued_work_dropped():
    grader = Slow(seconds=0.5)
    with serving(create_app(grader, "slow", max_batch=2, max_wait_ms=0)) as url:
        docs = [f"document {i}" for i in range(40)]  # 20 calls of 2 pairs: 10 s of work
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/v1/rerank", json={"query": "oil", "documents": docs}, timeout=1.0)
        start = time.monotonic()
        r = httpx.post(f"{url}/v1/chat/completions", json=chat_body("oil output"), timeout=30)
        waited = time.monotonic() - start
        assert r.status_code == 200
        time.sleep(1.5)
    gone = [d for d in grader.graded if d.startswith("document")]
    assert len(gone) <= 8, len(gone)  # what was in flight when the client left, not all 40
    assert waited < 5


@pytest.mark.parametrize("path, body, words", [
    ("/v1/chat/completions", chat_body(""), "document is empty"),
    ("/v1/chat/completions", chat_body("oil", query="  "), "query is empty"),
    ("/v1/chat/completions", {"model": "slow", "messages": [{"role": "user", "content": "x"}],
                              "lorag": {"query": "", "document": "d"}}, "lorag.query is empty"),
    ("/v1/chat/completions", {"model": "slow", "messages": [{"role": "user", "content": json.dumps(
        {"query": "q", "document": " "})}]}, "document is empty"),
    ("/v1/rerank", {"query": " ", "documents": ["a"]}, "query is empty"),
    ("/v1/rerank", {"query": "q", "documents": ["a", "", {"text": " "}]}, "documents[1] is empty (and 1 more)"),
])
def test_empty_fields_are_refused_as_bench_does(path, body, words):
    grader = Slow()
    with serving(create_app(grader, "slow")) as url:
        r = httpx.post(f"{url}{path}", json=body, timeout=30)
    assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
    assert grader.graded == []


@pytest.mark.parametrize("key", ["clé-secrète", "key with space", " padded", "tab\tkey"])
def test_a_key_no_client_could_send_is_refused_at_start(key):
    start = time.monotonic()
    r = CliRunner().invoke(cli, ["serve", "-g", "embedding", "--port", "0", "--api-key", key])
    assert r.exit_code == 2 and "--api-key" in r.output and "ASCII" in r.output, r.output
    assert time.monotonic() - start < 10  # before any model or data loads
    with pytest.raises(LoragError, match="ASCII"):
        create_app(Slow(), "slow", api_key=key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_port_is_held_from_the_check_on_and_is_the_one_printed(monkeypatch):
    import uvicorn

    import lorag_harness.serving.command as serve_module

    port, seen = free_port(), {}

    def loading(spec, **kw):  # another program tries the port while the model loads
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port))
                seen["taken by another"] = True
            except OSError:
                seen["taken by another"] = False
        return create_app(Slow(), "slow")

    monkeypatch.setattr(serve_module, "build_app", loading)
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets=None: seen.update(ports=[s.getsockname()[1] for s in sockets]))
    r = CliRunner().invoke(cli, ["serve", "-g", "embedding", "--port", str(port)])
    assert r.exit_code == 0, r.output
    assert seen["taken by another"] is False
    assert seen["ports"] == [port]
    assert f"http://127.0.0.1:{port}/v1" in r.output


@pytest.mark.integration  # starts a real lorag serve process
def test_port_0_prints_the_port_it_listens_on(tiny_model_dir, tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "lorag_harness", "serve", "-g", "base", "--base-model",
                                 tiny_model_dir, "--port", "0", "--train-pairs", "20", "--max-doc-tokens", "16"],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline, port = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None and port is None:
            for line in log.read_text().splitlines():
                if line.startswith("serving ") and "http://127.0.0.1:" in line:
                    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            time.sleep(0.3)
        assert port and port != 0, log.read_text()
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
