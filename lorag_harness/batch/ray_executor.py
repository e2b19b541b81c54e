"""``lorag grade --executor ray[:ADDRESS]``: Ray Data reads the pairs, an actor pool grades them.

- Read: a Ray Data datasource whose read tasks are pieces of the input file (byte ranges of a
  jsonl file starting at known line numbers, row ranges of a parquet file), read and checked by
  the same code as the local executor, so rows keep their numbers (default ids, error messages).
  ``ray.data.read_json`` would number neither lines nor rows.
- Grade: ``map_batches`` with a callable class on an actor pool (``concurrency=--actors``,
  ``num_gpus=--num-gpus`` each). The driver builds and checks the grader once; each actor gets a
  copy and loads its model once, on first use; the actors share the judgment cache (one file per
  node).
- Write: the driver takes the judgments in input order (``preserve_order``) and writes them with
  the local executor's writer, so the two outputs are the same file and a killed Ray run resumes
  like a local one. (``write_parquet`` writes a folder of parts and cannot resume.)

Errors inside Ray (a bad row, a grader breaking the contract) come back as one-line LoragErrors.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from lorag_harness.errors import LoragError
from lorag_harness.batch.readers import PairFile, Row
from lorag_harness.api.types import Judgment, Pair

ROW_COLUMNS = ("row", "id", "query", "document", "label", "query_topic", "document_topic")


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise LoragError("--executor ray needs Ray Data: pip install 'lorag-harness[ray]'") from None
    return ray


def _plain_error(e: LoragError) -> LoragError:
    """A LoragError that pickles across processes (subclasses with their own __init__ may not)."""
    return LoragError(str(e))


def rows_table(rows: list[Row]):
    import pyarrow as pa

    schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("query", pa.string()), ("document", pa.string()),
                        ("label", pa.bool_()), ("query_topic", pa.string()), ("document_topic", pa.string())])
    return pa.table({"row": [r.number for r in rows], "id": [r.id for r in rows],
                     "query": [r.pair.query for r in rows], "document": [r.pair.document for r in rows],
                     "label": [r.pair.label for r in rows], "query_topic": [r.pair.query_topic for r in rows],
                     "document_topic": [r.pair.document_topic for r in rows]}, schema=schema)


def _read_piece(source: PairFile, cursor, n: int):
    try:
        for rows in source.read(cursor, n, chunk_rows=1024):
            yield rows_table(rows)
    except LoragError as e:
        raise _plain_error(e) from None


def pairs_datasource(source: PairFile, pieces: list):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class PairPieces(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(functools.partial(_read_piece, source, cursor, n),
                             BlockMetadata(num_rows=n, size_bytes=None, exec_stats=None, input_files=(source.source,)))
                    for cursor, n in pieces]

    return PairPieces()


class GradeActor:
    """One per actor: the driver's grader (its model loaded once, on first use) and the judgment cache."""

    def __init__(self, grader, cache_path, reasons: bool, chunk_rows: int):
        from lorag_harness.evaluation.cache import JudgmentCache
        from lorag_harness.evaluation.runner import make_judge

        import ray

        if isinstance(grader, ray.ObjectRef):
            grader = ray.get(grader)
        self.reasons = reasons
        try:
            self.cache = JudgmentCache(cache_path)
        except LoragError as e:
            raise _plain_error(e) from None
        self.judge = make_judge(grader, self.cache, chunk_rows)

    def __call__(self, batch):
        import pyarrow as pa

        cols = batch.to_pydict()
        pairs = [Pair(q, d, label, qt, dt, pair_id=i) for q, d, label, qt, dt, i in
                 zip(cols["query"], cols["document"], cols["label"], cols["query_topic"], cols["document_topic"], cols["id"])]
        try:
            made = self.judge(pairs, reasons=self.reasons)
        except LoragError as e:
            raise _plain_error(e) from None
        schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("relevant", pa.bool_()), ("score", pa.float64()),
                            ("reason", pa.string())])
        return pa.table({"row": cols["row"], "id": cols["id"], "relevant": [j.relevant for j in made],
                         "score": [j.score for j in made],
                         "reason": [None if j.reason is None else json.dumps(j.reason) for j in made]}, schema=schema)


def lorag_error_in(exc: BaseException) -> LoragError | None:
    """The LoragError behind a Ray exception (Ray wraps errors of tasks and actors), if any."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, LoragError) and type(e).__module__.startswith("lorag_harness"):
            return e
        cause = getattr(e, "cause", None)
        if isinstance(cause, LoragError):
            return cause
        todo += [cause if isinstance(cause, BaseException) else None, e.__cause__, e.__context__]
    return None


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``); None for ``auto``; else LoragError."""
    if address == "auto":
        return None
    where = f"--executor ray:{address}"
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise LoragError(f"{where}: expected ray:HOST:PORT (the head node's GCS port, 6379 by default), "
                         "ray:ray://HOST:PORT or ray:auto")
    return host, int(port)


def check_address(address: str, timeout: float) -> None:
    """Something listens at a Ray address (a TCP connect within ``timeout`` s): before any model loads."""
    import socket

    found = split_address(address)
    if found is None:  # auto: the cluster `ray start` recorded on this machine, or RAY_ADDRESS
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            found = split_address(canonicalize_bootstrap_address_or_die("auto"))
        except ImportError:  # a Ray without that helper: ray.init finds the cluster (bounded by --ray-timeout)
            return
        except (ConnectionError, ValueError, LoragError) as e:
            raise LoragError(f"--executor ray:auto: no running Ray cluster found ({str(e).splitlines()[0]})") from None
    try:
        with socket.create_connection(found, timeout=timeout):
            pass
    except TimeoutError:
        raise LoragError(f"--executor ray:{address}: no answer within {timeout:g} s (--ray-timeout)") from None
    except OSError as e:
        raise LoragError(f"--executor ray:{address}: cannot connect ({e.strerror or e}); is the Ray head node "
                         "running there (`ray start --head`)?") from None


def _init_within(ray, timeout: float, **kwargs) -> None:
    """``ray.init`` that gives up after ``timeout`` s (joining an endpoint that is not a Ray head waits for ever)."""
    import threading

    box: dict = {}

    def run():
        try:
            ray.init(**kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["err"] = e

    t = threading.Thread(target=run, name="lorag-ray-init", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise ConnectionError(f"no Ray cluster answered within {timeout:g} s (--ray-timeout)")
    if "err" in box:
        raise box["err"]


def start_ray(address: str | None, cfg):
    """Join the cluster at ``address``, or start a local one; returns True if this call started Ray."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    # the core worker warns that actor arguments live in the object store; the driver holds them
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        if address:
            _init_within(ray, getattr(cfg, "ray_timeout", 30.0), address=address, **quiet)
        else:  # a local cluster: enough logical CPUs for the actors and a read task beside them
            need = int(cfg.actors * cfg.cpus_per_actor + 0.999) + 1
            ray.init(num_cpus=max(os.cpu_count() or 1, need), num_gpus=None, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LoragError(f"--executor ray{':' + address if address else ''}: cannot start or join Ray: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return True


def check_resources(ray, cfg) -> None:
    """Refuse what the cluster cannot place (Ray would wait for it for ever)."""
    have = ray.cluster_resources()
    for name, option, need in (("CPU", "--cpus-per-actor", cfg.actors * cfg.cpus_per_actor),
                               ("GPU", "--num-gpus", cfg.actors * cfg.num_gpus)):
        if need > have.get(name, 0) + 1e-9:
            raise LoragError(f"--actors {cfg.actors} × {option} need {need:g} {name}s; the Ray cluster has "
                             f"{have.get(name, 0):g}")


def grade_on_ray(source: PairFile, cursor, remaining: int, grader, cfg, address: str | None, take) -> None:
    """Grade the ``remaining`` rows from ``cursor`` on; ``take(ids, judgments)`` gets them in input order."""
    ray = require_ray()
    import ray.cloudpickle as cloudpickle

    try:
        cloudpickle.dumps(grader)
    except Exception as e:  # noqa: BLE001 - any pickling failure
        raise LoragError(f"grader {cfg.grader}: cannot be sent to Ray actors ({type(e).__name__}: {e})") from None
    cache_path = cfg.cache_path
    if cache_path not in (None, ":memory:"):
        cache_path = str(Path(cache_path).absolute())
    started = start_ray(address, cfg)
    for name in ("ray", "ray.data"):  # Ray's own progress and info lines would bury ours
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        check_resources(ray, cfg)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # judgments come back in input order
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        if remaining == 0:
            return
        per_piece = max(cfg.chunk_rows, min(8192, -(-remaining // (4 * cfg.actors))))
        pieces = source.shards(cursor, per_piece)
        # reading takes no CPU slot: actors holding every CPU would otherwise starve it (a deadlock)
        ds = ray.data.read_datasource(pairs_datasource(source, pieces), num_cpus=0)
        grader_ref = ray.put(grader)  # held here for the whole run, so a restarted actor finds it
        ds = ds.map_batches(GradeActor, fn_constructor_args=(grader_ref, cache_path, cfg.reasons, cfg.chunk_rows),
                            batch_size=cfg.chunk_rows, batch_format="pyarrow", zero_copy_batch=True,
                            compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_cpus=cfg.cpus_per_actor,
                            num_gpus=cfg.num_gpus or None)
        last = cursor[1] - 1 if isinstance(cursor, tuple) else cursor
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            cols = batch.to_pydict()
            for number in cols["row"]:  # in order, each row once: what resuming relies on
                if number <= last:
                    raise LoragError(f"Ray returned row {number} after row {last}; the output so far is kept, "
                                     "the same command resumes")
                last = number
            judgments = [Judgment(relevant=r, score=s, reason=None if why is None else json.loads(why))
                         for r, s, why in zip(cols["relevant"], cols["score"], cols["reason"])]
            take(cols["id"], judgments)
    except Exception as e:  # noqa: BLE001 - unwrap Ray's wrapping of our own errors
        found = lorag_error_in(e)
        if found is not None and found is not e:
            raise LoragError(str(found)) from None
        raise
    finally:
        if started:
            ray.shutdown()
