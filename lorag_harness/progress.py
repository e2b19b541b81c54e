"""Progress every long command shows: a Rich bar on a terminal, and without one (a CI log, nohup,
``| tee``) a plain line at least every ``LORAG_HEARTBEAT_SECONDS`` (default 30): stage, done/total,
rate, ETA. Also the one place library chatter (transformers' "Loading weights" bars, its logging,
FutureWarnings) is silenced outside ``--debug``."""
from __future__ import annotations

import os
import sys
import threading
import warnings

from rich.console import Console
from rich.progress import Progress

HEARTBEAT_ENV = "LORAG_HEARTBEAT_SECONDS"


def heartbeat_seconds() -> float:
    try:
        return max(0.05, float(os.environ.get(HEARTBEAT_ENV, "30")))
    except ValueError:
        return 30.0


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def status_line(task) -> str:
    """'train s1: step 12/40 (training), 0.052 steps/s, ETA 9m00s, 3m51s elapsed'."""
    fields = task.fields
    unit = fields.get("unit", "")
    done = int(task.completed)
    total = f"/{int(task.total)}" if task.total is not None else ""
    parts = [f"{task.description}: {unit + ' ' if unit else ''}{done}{total}"]
    if fields.get("phase"):
        parts[0] += f" ({fields['phase']})"
    speed = task.speed
    if speed:
        plural = unit if unit.endswith("s") else f"{unit}s" if unit else "items"
        parts.append(f"{speed:.3g} {plural}/s")
    if task.total is not None and speed:
        parts.append(f"ETA {_duration(task.time_remaining)}")
    parts.append(f"{_duration(task.elapsed)} elapsed")
    extra = fields.get("heartbeat")
    if extra:
        parts.append(str(extra))
    return ", ".join(parts)


class HeartbeatProgress(Progress):
    """A Rich Progress that, when its console is not a terminal, prints ``status_line`` of every
    unfinished task when it starts and then every ``heartbeat_seconds()``."""

    def __init__(self, *columns, console: Console | None = None, **kwargs):
        super().__init__(*columns, console=console, **kwargs)
        self._beat_stop = threading.Event()
        self._beat_thread = None
        self._plain = not self.console.is_terminal

    def beat(self) -> None:
        with self._lock:
            tasks = [t for t in self.tasks if not t.finished and t.visible]
        for task in tasks:
            self.console.print(status_line(task), markup=False, highlight=False, soft_wrap=True)

    def _run(self) -> None:
        interval = heartbeat_seconds()
        while not self._beat_stop.wait(interval):
            self.beat()

    def add_task(self, description, *args, **kwargs):
        task_id = super().add_task(description, *args, **kwargs)
        if self._plain:
            self.console.print(status_line(self._tasks[task_id]), markup=False, highlight=False, soft_wrap=True)
        return task_id

    def start(self) -> None:
        if self._plain:  # no live bar off a terminal: plain lines from a thread instead
            self._beat_stop.clear()
            self._beat_thread = threading.Thread(target=self._run, name="lorag-heartbeat", daemon=True)
            self._beat_thread.start()
            return
        super().start()

    def stop(self) -> None:
        if self._plain:
            self._beat_stop.set()
            if self._beat_thread is not None:
                self._beat_thread.join(timeout=5)
            return
        super().stop()


def progress(*columns, console: Console | None = None, **kwargs) -> HeartbeatProgress:
    """The progress display of a long command (see the module docstring)."""
    return HeartbeatProgress(*columns, console=console or Console(stderr=True), **kwargs)


_quiet = False


def quiet_libraries(debug: bool = False) -> None:
    """Outside --debug: no transformers/huggingface_hub/datasets progress bars or info logging, no
    FutureWarning/DeprecationWarning from libraries. Called once by the CLI."""
    global _quiet
    if debug or _quiet:
        return
    _quiet = True
    # environment first: read by transformers, huggingface_hub and datasets when they are imported (the
    # CLI imports none of them before a command needs it)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # other libraries' bars (sentence-transformers' model card); read on tqdm's import
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if "transformers" in sys.modules:  # already imported (a library caller): tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    import logging

    for name in ("sentence_transformers", "peft", "accelerate", "bitsandbytes"):  # bnb: a missing optional kernel
        logging.getLogger(name).setLevel(logging.ERROR)
