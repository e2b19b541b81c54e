"""The FastAPI app behind ``lorag serve``: OpenAI-compatible endpoints over one grader.

- ``GET /v1/models``
- ``POST /v1/chat/completions``: the last user message reads ``Document: ...\\nQuery: ...``
  (our grading prompt), or is a JSON object ``{"query", "document"}``, or the request carries
  ``"lorag": {"query", "document"}``; the reply is the grader's JSON output, and with
  ``logprobs`` the value token carries P(" true") / P(" false") from the grader's score.
- ``POST /v1/rerank`` (also ``/rerank``, ``/v2/rerank``): ``{"query", "documents", "top_n"}`` ->
  ``{"results": [{"index", "relevance_score", "document"}]}``, best first (vLLM/Jina/Cohere shape).
- ``GET /health``: status and batching counters.

Concurrent requests are collected by a micro-batcher and graded in one ``grade()`` call on a
worker thread. Errors are JSON ``{"error": {"message", "type", "code"}}``; never a traceback.
"""
import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from lorag_harness.api.grader import grade_checked
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment, Pair
from lorag_harness.serving.limits import DEFAULT_MAX_REQUEST_MB, BodyLimit, ClientGone, check_api_key, unless_disconnected

log = logging.getLogger("lorag_harness.serving")

REASON_MIN_TOKENS = 32  # a max_tokens budget below this gets the relevant value only


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class LoragExtension(BaseModel):
    query: str | None = None
    document: str | None = None
    reasons: bool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, seed, ...: accepted, the grader is deterministic
    model: str
    messages: list[Message] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    lorag: LoragExtension | None = None


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    query: str = Field(min_length=1)
    documents: list[str | dict[str, Any]] = Field(min_length=1, max_length=1000)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = True


class MicroBatcher:
    """Collect pairs from concurrent requests for up to ``max_wait`` seconds or ``max_pairs``
    pairs, then grade them in one call on a worker thread (one call at a time)."""

    def __init__(self, grader, max_pairs: int = 32, max_wait: float = 0.005):
        self.grader, self.max_pairs, self.max_wait = grader, max_pairs, max_wait
        self.queue: asyncio.Queue | None = None
        self.batches = self.pairs = 0

    async def grade(self, pairs: list[Pair], reasons: bool) -> list[Judgment]:
        """Queued in pieces of at most ``max_pairs``: a cancelled request's pieces not yet graded are dropped."""
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(0, len(pairs), self.max_pairs):
            futures.append(loop.create_future())
            await self.queue.put((pairs[i : i + self.max_pairs], reasons, futures[-1]))
        try:
            parts = await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return [j for part in parts for j in part]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size, deadline = len(batch[0][0]), loop.time() + self.max_wait
            while size < self.max_pairs:
                try:  # everything already queued, then what arrives before the deadline
                    item = self.queue.get_nowait() if not self.queue.empty() else \
                        await asyncio.wait_for(self.queue.get(), max(deadline - loop.time(), 0))
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                batch.append(item)
                size += len(item[0])
            for reasons in (False, True):
                group = [b for b in batch if b[1] == reasons and not b[2].done()]
                if group:
                    try:
                        await self._grade_group(group, reasons)
                    except Exception as e:  # noqa: BLE001 - the loop must outlive any one batch
                        log.error("batch failed: %s: %s", type(e).__name__, e)
                        for _, _, fut in group:
                            if not fut.done():
                                fut.set_exception(e)

    async def _grade_group(self, group, reasons: bool) -> None:
        pairs = [p for b in group for p in b[0]]
        try:
            judgments = await asyncio.to_thread(self._grade, pairs, reasons)
        except Exception as e:  # noqa: BLE001 - handed to the waiting requests
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.batches += 1
        self.pairs += len(pairs)
        i = 0
        for b_pairs, _, fut in group:
            if not fut.done():
                fut.set_result(judgments[i : i + len(b_pairs)])
            i += len(b_pairs)

    def _grade(self, pairs: list[Pair], reasons: bool) -> list[Judgment]:
        return grade_checked(self.grader, pairs, reasons=reasons)


def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def checked_pair(query: str, document: str, where: str = "") -> Pair:
    """A pair with text in both fields (as bench and grade require)."""
    for field, value in (("query", query), ("document", document)):
        if not value.strip():
            raise HTTPException(400, f"{where}{field} is empty")
    return Pair(query, document, False)


def pair_from_chat(req: ChatRequest) -> Pair:
    """The query and document of a chat request (see the module docstring for the formats)."""
    ext = req.lorag
    if ext and ext.query is not None and ext.document is not None:
        return checked_pair(ext.query, ext.document, "lorag.")
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise HTTPException(400, "no user message: send the pair as 'Document: ...\\nQuery: ...'")
    text = text_of(users[-1].content).strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("query"), str) and isinstance(obj.get("document"), str):
            return checked_pair(obj["query"], obj["document"])
    head, sep, query = text.rpartition("\nQuery:")
    if sep and (head.startswith("Document: ") or head == "Document:"):
        return checked_pair(query.removeprefix(" "), head[len("Document: "):])
    raise HTTPException(400, "the last user message must read 'Document: <text>\\nQuery: <text>' or be a JSON object "
                             "with string fields 'query' and 'document' (or pass \"lorag\": {\"query\", \"document\"})")


def value_probability(j: Judgment) -> float:
    """P(" true") for the logprobs: the score when it is a probability, else the decision."""
    if j.score is not None and 0.0 <= j.score <= 1.0:
        p = j.score
    else:
        p = 1.0 if j.relevant else 0.0
    return min(max(p, 1e-9), 1 - 1e-9)


def chat_reply(j: Judgment, reasons: bool, model: str, logprobs: bool, top_n: int | None) -> dict:
    value = "null" if j.relevant is None else json.dumps(j.relevant)
    head = '{"relevant":'
    tail = "}"
    if reasons:
        tail = ", " + json.dumps({"reason": j.reason})[1:]  # ', "reason": {...}}'
    content = f"{head} {value}{tail}"
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop", "logprobs": None}
    if logprobs:
        p = value_probability(j)
        alts = sorted([(" true", math.log(p)), (" false", math.log(1 - p))], key=lambda a: -a[1])
        chosen = " true" if j.relevant else " false"

        def entry(token: str, lp: float, top) -> dict:
            return {"token": token, "logprob": lp, "bytes": list(token.encode()),
                    "top_logprobs": [{"token": t, "logprob": l, "bytes": list(t.encode())} for t, l in top[: top_n or 0]]}

        tokens = [entry(head, 0.0, [(head, 0.0)])]
        if j.relevant is None:
            tokens.append(entry(" null", 0.0, [(" null", 0.0)]))
        else:
            tokens.append(entry(chosen, dict(alts)[chosen], alts))
        tokens.append(entry(tail, 0.0, [(tail, 0.0)]))
        choice["logprobs"] = {"content": tokens}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [choice]}


def document_text(doc, index: int) -> str:
    if isinstance(doc, str):
        return doc
    if isinstance(doc.get("text"), str):
        return doc["text"]
    raise HTTPException(400, f"documents[{index}] must be a string or an object with a string 'text'")


def create_app(grader, model_name: str | None = None, api_key: str | None = None, max_batch: int = 32,
               max_wait_ms: float = 5.0, max_request_mb: float = DEFAULT_MAX_REQUEST_MB) -> FastAPI:
    """An OpenAI-compatible app over ``grader``; ``api_key`` enables bearer-token checks; a request
    body above ``max_request_mb`` gets 413."""
    check_api_key(api_key)
    name = model_name or grader.name
    batcher = MicroBatcher(grader, max_batch, max_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.queue = asyncio.Queue()
        task = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="lorag serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=int(max_request_mb * 2**20))

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send 'Authorization: Bearer <key>')",
                                headers={"WWW-Authenticate": "Bearer"})

    def check_model(requested: str | None) -> None:
        if requested is not None and requested != name:
            raise HTTPException(404, f"model {requested!r} not found; this server serves {name!r}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        response = error(exc.status_code, str(exc.detail), "authentication_error" if exc.status_code == 401 else
                         "not_found_error" if exc.status_code == 404 else "invalid_request_error")
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
        return error(400, f"invalid request: {problems}")

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone):  # nobody reads it: the work was dropped
        return error(499, "client closed the request")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        message = str(exc) if isinstance(exc, LoragError) else f"internal error ({type(exc).__name__}); see the server log"
        return error(500, message, "server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "batches": batcher.batches, "pairs": batcher.pairs}

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "lorag-harness"}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat(req: ChatRequest, request: Request):
        check_model(req.model)
        if req.stream:
            raise HTTPException(400, "stream=true is not supported")
        pair = pair_from_chat(req)
        budget = req.max_completion_tokens or req.max_tokens
        reasons = req.lorag.reasons if req.lorag and req.lorag.reasons is not None else \
            budget is None or budget >= REASON_MIN_TOKENS
        [judgment] = await unless_disconnected(request, batcher.grade([pair], reasons))
        return chat_reply(judgment, reasons, name, req.logprobs, req.top_logprobs)

    async def rerank(req: RerankRequest, request: Request):
        check_model(req.model)
        texts = [document_text(d, i) for i, d in enumerate(req.documents)]
        if not req.query.strip():
            raise HTTPException(400, "query is empty")
        if empty := [i for i, t in enumerate(texts) if not t.strip()]:
            raise HTTPException(400, f"documents[{empty[0]}] is empty" + (f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""))
        pairs = [Pair(req.query, t, False) for t in texts]
        judgments = await unless_disconnected(request, batcher.grade(pairs, False))
        scores = [j.score if j.score is not None else None if j.relevant is None else float(j.relevant) for j in judgments]
        order = sorted(range(len(texts)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))
        results = []
        for i in order[: req.top_n or len(order)]:
            row: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if req.return_documents:
                row["document"] = {"text": texts[i]}
            results.append(row)
        return {"id": f"rerank-{uuid.uuid4().hex}", "model": name, "results": results}

    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        app.post(path, dependencies=[Depends(authorised)])(rerank)
    return app
