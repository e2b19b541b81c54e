"""bench/results.json: one section per bench script, each in one envelope:

    {"command": "python -m bench.grading --rounds 4", "commit": "<git hash>", "date": "2026-12-01T23:10:00Z",
     "machine": {"cpu": ..., "cpu_capability": ..., "cores": ..., "torch": ..., "precision": ...},
     "results": {...what the script measured...}}

Every script replaces its own section only, atomically, under a lock (two benches may finish at once)."""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")
ENVELOPE = ("command", "commit", "date", "machine", "results")
MACHINE = ("cpu", "cpu_capability", "cores", "precision")


def commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def envelope(results, precision: str | None, command: str | None = None) -> dict:
    from lorag_harness.backends.precision import machine

    return {"command": command or "python -m " + " ".join([_module_of(sys.argv[0]), *sys.argv[1:]]),
            "commit": commit(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(precision or "fp32"), "results": results}


def _module_of(script: str) -> str:
    path = Path(script)
    return f"bench.{path.stem}" if path.suffix == ".py" else script


def update(key: str, value=None, *, change=None, precision: str | None = None, command: str | None = None,
           path: Path | str = RESULTS) -> None:
    """Set section ``key``'s results to ``value``, or call ``change(results)`` on them in place; the envelope
    (command, commit, date, machine with ``precision``) is written anew. The read and the write happen under
    an exclusive lock; the file is written to a temporary name and renamed."""
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() else {}
        if change is not None:
            mine = data.get(key, {}).get("results", {})
            change(mine)
            value = mine
        data[key] = envelope(value, precision, command)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)


def update_rows(key: str, out: dict, path: Path | str = RESULTS) -> None:
    """Section ``key`` becomes ``out``, whose rows replace the stored rows of the same ``system``; stored
    rows of other systems (earlier runs of other options) are kept."""
    mine = {r["system"] for r in out["rows"]}

    def change(current: dict) -> None:
        kept = [r for r in current.get("rows", []) if r["system"] not in mine]
        current.clear()
        current.update(out | {"rows": kept + out["rows"]})

    update(key, change=change, path=path)


def problems(data: dict) -> list[str]:
    """What breaks the schema, one line each (the test of bench/results.json)."""
    out = []
    for key, section in data.items():
        if not isinstance(section, dict) or set(section) != set(ENVELOPE):
            out.append(f"{key}: keys {sorted(section) if isinstance(section, dict) else type(section).__name__}, "
                       f"want {list(ENVELOPE)}")
            continue
        missing = [m for m in MACHINE if section["machine"].get(m) in (None, "")]
        if missing:
            out.append(f"{key}: machine lacks {missing}")
        try:
            dt.datetime.strptime(section["date"], "%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            out.append(f"{key}: date {section['date']!r} is not YYYY-MM-DDTHH:MM:SSZ")
        if not section["command"] or not section["commit"]:
            out.append(f"{key}: no command or commit")
    return out


def intervals(metrics: dict, names) -> dict:
    """``{name: {value, low, high}}`` of a report's metric entries: what the bench tables keep."""
    return {m: {k: metrics[m].get(k) for k in ("value", "low", "high")} for m in names}
