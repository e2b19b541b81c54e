"""bench/results.json: every bench script replaces its own key only, atomically, under a lock
(two benches may finish at the same time)."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def update(key: str, value=None, *, change=None, path: Path | str = RESULTS) -> None:
    """Set ``key`` to ``value``, or call ``change(current)`` on the key's dict in place. The read and
    the write happen under an exclusive lock; the file is written to a temporary name and renamed,
    so neither a concurrent bench nor an interrupted write loses what the file holds."""
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() else {}
        if change is not None:
            mine = data.get(key, {})
            change(mine)
            value = mine
        data[key] = value
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)


def intervals(metrics: dict, names) -> dict:
    """``{name: {value, low, high}}`` of a report's metric entries: what the bench tables keep."""
    return {m: {k: metrics[m].get(k) for k in ("value", "low", "high")} for m in names}
