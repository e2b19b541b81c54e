"""What ``lorag train`` and ``lorag merge`` may write over, checked before any work.

Every folder the trainers write holds a ``manifest.json`` naming the kind of model (``kind``; S1/S2
adapters of earlier versions: ``stage``) and the run's configuration (``key``). An ``--out`` folder is
taken when it is missing or empty, or holds the same kind of model from the same configuration (the
same run again). Another kind of model, the same kind from another run, or files lorag did not write
are refused unless ``--force``. The folder is made only when the model is saved: a refused run leaves
no empty ``--out`` behind.
"""
from __future__ import annotations

import os
from pathlib import Path

from lorag_harness.api.model_kinds import KINDS, read_owner
from lorag_harness.errors import LoragError


def check_writable(out: str | Path, option: str = "--out") -> Path:
    """``out`` is a folder, or can be made: probed by writing a file, then everything made is removed."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise LoragError(f"{option} {out}: exists and is not a folder")
    made, parent = [], path
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lorag-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise LoragError(f"{option} {out}: not writable ({e.strerror or e})") from None
    finally:
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
    return path


def claim(out: str | Path, kind: str, key: str | None = None, force: bool = False, option: str = "--out",
          fix: str | None = None) -> Path:
    """Check that a run of ``kind`` (configuration ``key``; None: any) may write ``out``; raise otherwise
    (``fix``: what the message tells the user to do, default: --force or another ``option``)."""
    path = check_writable(out, option)
    if force or not path.is_dir():
        return path
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return path
    found, manifest = read_owner(path)
    again = fix or f"pass --force to replace it, or choose another {option}"
    if found is None:
        shown = ", ".join(entries[:4]) + (", …" if len(entries) > 4 else "")
        raise LoragError(f"{option} {out}: holds files lorag did not write ({shown}); {again}")
    if found != kind:
        raise LoragError(f"{option} {out}: holds {KINDS[found]}, not {KINDS[kind]}; {again}")
    if key is not None and manifest.get("key") != key:
        raise LoragError(f"{option} {out}: holds {KINDS[found]} from another run (other options or data); {again}")
    return path
