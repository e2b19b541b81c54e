"""Guards of ``lorag serve``: a request body size limit (413), requests whose client has gone, the API key.

``BodyLimit`` is a plain ASGI middleware: a declared ``Content-Length`` above the limit is refused
before anything is read; a body sent without one is read up to the limit, then refused. The body read
is handed on to the app, later ``receive`` calls go to the server (so the app still sees a disconnect).
"""
from __future__ import annotations

import asyncio
import json

from lorag_harness.errors import LoragError

DEFAULT_MAX_REQUEST_MB = 4.0


def check_api_key(key: str | None, option: str = "--api-key") -> None:
    """HTTP headers carry ASCII: a key with other characters could never be matched."""
    if key is None:
        return
    if not key.strip():
        raise LoragError(f"{option} is empty")
    if not (key.isascii() and key.isprintable()) or key != key.strip() or " " in key:
        raise LoragError(f"{option}: use printable ASCII without spaces (HTTP headers carry ASCII; "
                         "another key could never be matched)")


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_bytes):
            return await self.too_large(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away while sending
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return await self.too_large(send)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def too_large(self, send) -> None:
        mb = self.max_bytes / 2**20
        data = json.dumps({"error": {"message": f"request body larger than {mb:g} MB (lorag serve --max-request-mb)",
                                     "type": "invalid_request_error", "code": 413}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


async def unless_disconnected(request, work):
    """Await ``work`` (a coroutine); if the client disconnects first, cancel it (queued pairs are dropped)."""
    task = asyncio.ensure_future(work)

    async def gone():
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        return task.result()
    task.cancel()
    raise ClientGone()


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""
