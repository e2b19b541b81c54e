"""bench/results.json: every bench script replaces its own key only, atomically."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def update(key: str, value=None, *, change=None, path: Path = RESULTS) -> None:
    """Set ``key`` to ``value``, or call ``change(current)`` on the key's dict in place; the file is
    written to a temporary name and renamed, so an interrupted write never leaves half of it."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    if change is not None:
        mine = data.get(key, {})
        change(mine)
        value = mine
    data[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
