"""``lorag serve``: any registered grader (a base model with an adapter, the embedding grader,
a plug-in) behind an OpenAI-compatible HTTP API; the app is in :mod:`lorag_harness.serving.app`.

``serving(app)`` runs an app on a free loopback port in a thread (tests, benches, notebooks)."""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time

import click

from lorag_harness.cli.options import Finite, grader_build_options, grader_option_values, precision_value, quant_value
from lorag_harness.errors import LoragError

LOOPBACK = "127.0.0.1"


def build_app(spec: str, *, model_name: str | None = None, api_key: str | None = None, max_batch: int = 32,
              max_wait_ms: float = 5.0, dataset: str | None = "reuters-r8", dataset_options: dict | None = None,
              base_model: str | None = None, embedder: str | None = None, batch_size: int = 8,
              max_doc_tokens: int = 160, quant: str | None = None, options: dict | None = None, warm_up: bool = True,
              precision: str = "auto", max_request_mb: float | None = None):
    """Build the grader ``spec`` (``dataset`` gives calibrating graders their training pairs) and its app."""
    try:
        from lorag_harness.serving.app import create_app
    except ImportError as e:
        raise LoragError(f"lorag serve needs FastAPI and uvicorn ({e.name} is missing): "
                         "pip install 'lorag-harness[serve]'") from None
    from lorag_harness.api import registry
    from lorag_harness.api.types import Pair
    from lorag_harness.evaluation.runner import build_grader, load_dataset

    data = load_dataset(dataset, dataset_options or {}) if dataset else None
    context = registry.GraderContext(base_model, embedder, data, batch_size, max_doc_tokens, quant, dict(options or {}),
                                     precision)
    grader = build_grader(spec, context)
    if warm_up:  # load the model now: a broken model fails here, not on the first request
        grader.grade([Pair("warm up", "warm up", False)], reasons=False, advance=None)
    from lorag_harness.serving.limits import DEFAULT_MAX_REQUEST_MB

    return create_app(grader, model_name or spec, api_key, max_batch, max_wait_ms,
                      max_request_mb or DEFAULT_MAX_REQUEST_MB)


@contextlib.contextmanager
def serving(app, host: str = LOOPBACK, port: int = 0, start_timeout: float = 60.0):
    """Run ``app`` with uvicorn in a daemon thread; yields its base URL (``http://host:port``)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="lorag-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port} within {start_timeout:.0f} s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_port(host: str, port: int) -> socket.socket:
    """The listening socket, bound now and held until the server takes it: no other program can take the
    port while the model loads, and ``--port 0`` gets its real number."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        s.bind((host, port))
        s.listen(2048)
    except OSError as e:
        s.close()
        raise LoragError(f"--host {host} --port {port}: {e.strerror or e}") from None
    except OverflowError as e:
        s.close()
        raise LoragError(f"--host {host} --port {port}: {e}") from None
    return s


@click.command("serve")
@click.option("--grader", "-g", "spec", default="base", show_default=True,
              help="Grader spec to serve, e.g. s1:adapters/s1, embedding, base")
@click.option("--model-name", default=None, help="Model id clients send (default: the grader spec)")
@click.option("--host", default=LOOPBACK, show_default=True, help="Listen address (loopback unless you mean it)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="LORAG_SERVE_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' [env LORAG_SERVE_API_KEY; prefer the environment]")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Pairs graded in one call by the micro-batcher")
@click.option("--max-wait-ms", type=Finite(0, 1000), default=5.0, show_default=True,
              help="How long the micro-batcher waits for more requests")
@click.option("--dataset", "-d", default="reuters-r8", show_default=True,
              help="Training pairs for graders that calibrate (embedding) and topics for s2-json")
@click.option("--train-pairs", type=click.IntRange(2), default=400, show_default=True)
@click.option("--max-request-mb", type=Finite(min=0, min_open=True), default=4.0, show_default=True,
              help="Largest request body accepted (413 above it)")
@grader_build_options
def serve_command(spec, model_name, host, port, api_key, max_batch, max_wait_ms, dataset, train_pairs, base_model,
                  embedder, batch_size, max_doc_tokens, quant, precision, max_request_mb, **plugin_options):
    """Serve a grader over an OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/rerank."""
    from lorag_harness.serving.limits import check_api_key

    check_api_key(api_key)
    sock = bind_port(host, port)  # held from here on: the port cannot be taken while the model loads
    try:
        if not is_loopback(host) and api_key is None:
            click.echo(f"warning: listening on {host} without --api-key: anyone who can reach it can use it", err=True)
        app = build_app(spec, model_name=model_name, api_key=api_key, max_batch=max_batch, max_wait_ms=max_wait_ms,
                        dataset=dataset, dataset_options={"n_train": train_pairs}, base_model=base_model,
                        embedder=embedder, batch_size=batch_size, max_doc_tokens=max_doc_tokens,
                        quant=quant_value(quant), options=grader_option_values(plugin_options),
                        precision=precision_value({"quant": quant, "precision": precision}),
                        max_request_mb=max_request_mb)
        import uvicorn

        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving {model_name or spec} on http://{shown}:{bound}/v1"
                   + (" (bearer token required)" if api_key else ""), err=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
