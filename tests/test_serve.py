"""`lorag serve` over real HTTP on loopback: OpenAI-compatible endpoints over the tiny LM grader."""
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx2")
openai = pytest.importorskip("openai")

from click.testing import CliRunner  # noqa: E402

from lorag_harness.api.grader import Grader  # noqa: E402
from lorag_harness.cli.app import cli  # noqa: E402
from lorag_harness.api.types import Judgment  # noqa: E402
from lorag_harness.serving.command import serving  # noqa: E402
from lorag_harness.serving.app import create_app  # noqa: E402

KEY = "sk-serve-test-0123456789"


@pytest.fixture(scope="module")
def grader(tiny_lm_grader):
    return tiny_lm_grader


@pytest.fixture(scope="module")
def server(served_tiny):
    return served_tiny


@pytest.fixture(scope="module")
def pairs(r8_small):
    return r8_small.eval_pairs[:8]


def prompt(p):
    return f"Document: {p.document}\nQuery: {p.query}"


def chat(url, body, **kw):
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60, **kw)


def test_models_and_health(server):
    r = httpx.get(f"{server}/v1/models", timeout=10)
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["tiny"]
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"


def test_chat_completion_gives_the_graders_decision_and_probability(server, grader, pairs):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    expected = grader.grade(pairs)
    for p, j in zip(pairs, expected):
        resp = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt(p)}],
                                              max_tokens=8, logprobs=True, top_logprobs=2)
        choice = resp.choices[0]
        assert json.loads(choice.message.content) == {"relevant": j.relevant}
        tokens = choice.logprobs.content
        assert "".join(t.token for t in tokens) == choice.message.content
        value = tokens[1]
        alts = {a.token: a.logprob for a in value.top_logprobs}
        assert set(alts) == {" true", " false"}
        import math

        assert math.exp(alts[" true"]) == pytest.approx(j.score, abs=1e-5)
        assert value.token == (" true" if j.relevant else " false")


def test_pair_formats_and_reasons(server, grader, pairs):
    p = pairs[0]
    want = grader.grade([p], reasons=True)[0]
    as_json = chat(server, {"model": "tiny", "messages": [
        {"role": "user", "content": json.dumps({"query": p.query, "document": p.document})}]})
    extension = chat(server, {"model": "tiny", "messages": [{"role": "user", "content": "ignored"}],
                              "lorag": {"query": p.query, "document": p.document}})
    for r in (as_json, extension):  # no max_tokens: room for the reason
        assert r.status_code == 200
        out = json.loads(r.json()["choices"][0]["message"]["content"])
        assert out == {"relevant": want.relevant, "reason": want.reason}
    parts = chat(server, {"model": "tiny", "max_tokens": 4, "messages": [
        {"role": "system", "content": "anything"},
        {"role": "user", "content": [{"type": "text", "text": prompt(p)}]}]})
    assert json.loads(parts.json()["choices"][0]["message"]["content"]) == {"relevant": want.relevant}


def test_rerank_orders_by_the_graders_score(server, grader, pairs):
    query = pairs[0].query
    docs = [p.document for p in pairs]
    scores = [j.score for j in grader.grade([type(pairs[0])(query, d, False) for d in docs])]
    r = httpx.post(f"{server}/v1/rerank", json={"model": "tiny", "query": query, "documents": docs, "top_n": 3}, timeout=60)
    assert r.status_code == 200
    results = r.json()["results"]
    best = sorted(range(len(docs)), key=lambda i: -scores[i])[:3]
    assert [x["index"] for x in results] == best
    for x in results:
        assert x["relevance_score"] == pytest.approx(scores[x["index"]], abs=1e-5)
        assert x["document"]["text"] == docs[x["index"]]
    bare = httpx.post(f"{server}/rerank", json={"query": query, "documents": [{"text": d} for d in docs[:2]],
                                                "return_documents": False}, timeout=60).json()["results"]
    assert len(bare) == 2 and "document" not in bare[0]


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/chat/completions", {"model": "tiny"}, 400, "messages"),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hello"}]}, 400, "Document:"),
    ("/v1/chat/completions", {"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "serves 'tiny'"),
    ("/v1/chat/completions", {"model": "tiny", "stream": True, "messages": [{"role": "user", "content": "x"}]}, 400, "stream"),
    ("/v1/chat/completions", {"model": "tiny", "top_logprobs": 50, "messages": [{"role": "user", "content": "x"}]}, 400, "top_logprobs"),
    ("/v1/chat/completions", {"model": "tiny", "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "assistant", "content": "Document: a\nQuery: b"}]}, 400, "user message"),
    ("/v1/rerank", {"query": "q", "documents": []}, 400, "documents"),
    ("/v1/rerank", {"query": "q", "documents": [{"title": "no text"}]}, 400, "documents[0]"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n"),
])
def test_bad_requests_get_4xx_with_a_message(server, path, body, status, words):
    r = httpx.post(f"{server}{path}", json=body, timeout=30)
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert words in message and "Traceback" not in r.text


def test_malformed_json_body_is_a_400(server):
    r = httpx.post(f"{server}/v1/chat/completions", content=b"{not json", timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "invalid request" in r.json()["error"]["message"]


def test_bearer_token(grader, pairs):
    with serving(create_app(grader, "tiny", api_key=KEY)) as url:
        body = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": prompt(pairs[0])}]}
        assert chat(url, body).status_code == 401
        wrong = chat(url, body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert KEY not in wrong.text
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
        assert chat(url, body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert client.models.list().data[0].id == "tiny"


class CountingGrader(Grader):
    """Wraps a grader and records the size of every grade() call."""

    def __init__(self, inner):
        self.name, self.inner, self.calls = "counting", inner, []

    def grade(self, pairs, *, reasons=False, advance=None):
        self.calls.append(len(pairs))
        return self.inner.grade(pairs, reasons=reasons, advance=advance)


def test_concurrent_requests_are_graded_in_batches(grader, pairs):
    counting = CountingGrader(grader)
    # a wide window: the eight requests below land in it however loaded the machine is
    with serving(create_app(counting, "tiny", max_batch=8, max_wait_ms=1000)) as url:
        body = lambda p: {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": prompt(p)}]}  # noqa: E731
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda p: chat(url, body(p)), pairs))
        health = httpx.get(f"{url}/health", timeout=10).json()
    expected = grader.grade(pairs)
    assert [json.loads(r.json()["choices"][0]["message"]["content"])["relevant"] for r in replies] == \
        [j.relevant for j in expected]
    assert sum(counting.calls) == 8 and len(counting.calls) < 8  # batched, nothing lost
    assert health["pairs"] == 8 and health["batches"] == len(counting.calls)


class BrokenGrader(Grader):
    name = "broken"

    def grade(self, pairs, *, reasons=False, advance=None):
        if pairs and pairs[0].query == "short":
            return [Judgment(True)]  # one judgment too few for a batch of two
        raise RuntimeError("model fell over")


def test_a_failing_grader_gives_a_json_500_not_a_traceback():
    with serving(create_app(BrokenGrader(), "broken")) as url:
        r = chat(url, {"model": "broken", "messages": [{"role": "user", "content": "Document: d\nQuery: q"}]})
        assert r.status_code == 500 and "RuntimeError" in r.json()["error"]["message"] and "Traceback" not in r.text
        r = httpx.post(f"{url}/v1/rerank", json={"query": "short", "documents": ["a", "b"]}, timeout=30)
        assert r.status_code == 500 and "returned 1 judgments for 2 pairs" in r.json()["error"]["message"]


def test_cli_serve_refuses_a_busy_port_an_unknown_grader_and_bad_data(tmp_path, jsonl_writer):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(cli, ["serve", "-g", "embedding", "--port", str(port)])
    assert r.exit_code == 2 and f"--port {port}" in r.output
    rows = [{"query": f"q{i}", "document": f"document {i}", "label": i % 2 == 0} for i in range(8)]
    data = jsonl_writer(tmp_path / "pairs.jsonl", rows)
    r = CliRunner().invoke(cli, ["serve", "-g", "nonesuch", "--port", "0", "--dataset", f"jsonl:{data}"])
    assert r.exit_code == 2 and "unknown grader 'nonesuch'" in r.output
    r = CliRunner().invoke(cli, ["serve", "-g", "embedding", "--port", "0", "--dataset", f"jsonl:{tmp_path}/none.jsonl"])
    assert r.exit_code == 2 and "none.jsonl" in r.output and "Traceback" not in r.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lorag_serve_command_with_a_key_from_the_environment(tiny_model_dir, pairs, monkeypatch):
    """The command in-process, with uvicorn serving for real on its socket: the key comes from the
    environment, a request without it is refused, one with it answered, and the key is never printed."""
    import uvicorn

    run, seen = uvicorn.Server.run, {}

    def serve_then_ask(self, sockets=None):
        thread = threading.Thread(target=run, args=(self,), kwargs={"sockets": sockets}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while not self.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
            body = {"model": "base", "max_tokens": 4, "messages": [{"role": "user", "content": prompt(pairs[0])}]}
            seen["anonymous"] = chat(url, body).status_code
            r = chat(url, body, headers={"Authorization": f"Bearer {KEY}"})
            seen["with key"] = (r.status_code, r.json()["choices"][0]["message"]["content"])
        finally:
            self.should_exit = True
            thread.join(timeout=30)

    monkeypatch.setattr(uvicorn.Server, "run", serve_then_ask)
    r = CliRunner().invoke(cli, ["serve", "-g", "base", "--base-model", tiny_model_dir, "--port", "0",
                                 "--train-pairs", "20", "--max-doc-tokens", "40"], env={"LORAG_SERVE_API_KEY": KEY})
    assert r.exit_code == 0, r.output
    assert seen["anonymous"] == 401
    assert seen["with key"][0] == 200 and "relevant" in seen["with key"][1]
    assert "bearer token required" in r.output and KEY not in r.output


@pytest.mark.integration  # a real lorag serve process (the in-process test above covers the same on one socket)
def test_lorag_serve_command_end_to_end(tiny_model_dir, tmp_path, pairs):
    """The real command in a subprocess: a bearer token from the environment, then a request."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**__import__("os").environ, "LORAG_SERVE_API_KEY": KEY}
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "lorag_harness", "serve", "-g", "base", "--base-model",
                                 tiny_model_dir, "--port", str(port), "--train-pairs", "20", "--max-doc-tokens", "40"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert proc.poll() is None, log.read_text()
        body = {"model": "base", "max_tokens": 4, "messages": [{"role": "user", "content": prompt(pairs[0])}]}
        assert chat(url, body).status_code == 401
        r = chat(url, body, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and "relevant" in r.json()["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert KEY not in log.read_text()
    assert "bearer token required" in log.read_text()


def test_serving_helper_stops_by_itself(grader):
    before = threading.active_count()
    with serving(create_app(grader, "tiny")) as url:
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    assert threading.active_count() <= before
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)
