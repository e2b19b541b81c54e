"""Judgment files written by ``lorag grade``, resumable after a kill.

- ``.jsonl``: one line per row, appended and fsync'd chunk by chunk. On restart the complete lines
  are the rows done (a partial last line, cut by the kill, is truncated away).
- ``.parquet``: part files of ``part_rows`` rows in ``<out>.parts/``, each written to a temporary
  name and renamed when complete; at the end they are combined into ``<out>`` one part at a time
  and removed. On restart the complete parts are the rows done.

Rows are written in input order, so "rows done" is a count: the run resumes at the next input row.
Judgments of rows graded but not yet written are in the judgment cache and are not recomputed.
A sidecar ``<out>.manifest.json`` names the grader (fingerprint), ``--reasons`` and the input
(path, size, mtime): a run resumes only the same work, and refuses to overwrite other work
without ``--force``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment

MANIFEST_VERSION = 1


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def read_manifest(out: Path) -> dict | None:
    path = manifest_path(out)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoragError(f"{path}: unreadable manifest ({e}); pass --force to start over") from None


def write_manifest(out: Path, manifest: dict) -> None:
    path = manifest_path(out)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_outputs(out: Path) -> None:
    for path in (out, manifest_path(out)):
        if path.exists():
            path.unlink()
    shutil.rmtree(parts_dir(out), ignore_errors=True)


def move_aside(out: Path) -> list[tuple[Path, Path]]:
    """``--force``: the earlier output, manifest and part files, renamed and kept until the new run finishes."""
    moved = []
    for path in (out, manifest_path(out), parts_dir(out)):
        if path.exists():
            target = path.with_name(f"{path.name}.replaced-{os.getpid()}")
            os.replace(path, target)
            moved.append((path, target))
    return moved


def restore(moved: list[tuple[Path, Path]]) -> None:
    for path, target in moved:
        os.replace(target, path)


def discard(moved: list[tuple[Path, Path]]) -> None:
    for _, target in moved:
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def holds_rows(out: Path) -> bool:
    """Whether ``out`` (or its part files) holds any judgment yet."""
    parts = parts_dir(out)
    return (out.exists() and out.stat().st_size > 0) or (parts.is_dir() and any(parts.iterdir()))


def record(row_id: str, judgment: Judgment, reasons: bool) -> dict:
    rec = {"id": row_id, "relevant": judgment.relevant, "score": judgment.score}
    if reasons:
        rec["reason"] = judgment.reason
    return rec


class JsonlOut:
    def __init__(self, out: Path, reasons: bool):
        self.out, self.reasons, self._fh = out, reasons, None

    def resume(self) -> tuple[int, str | None]:
        """(rows already written, id of the last one); cuts a partial last line."""
        if not self.out.exists():
            return 0, None
        rows, good_end, last = 0, 0, None
        with open(self.out, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                rows += 1
                good_end += len(raw)
                last = raw
        if good_end != self.out.stat().st_size:
            os.truncate(self.out, good_end)
        if last is None:
            return rows, None
        try:
            row = json.loads(last)
            return rows, str(row["id"])
        except (ValueError, TypeError, KeyError) as e:
            problem = (f"invalid JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else
                       "not UTF-8" if isinstance(e, UnicodeDecodeError) else "no 'id'")
            raise LoragError(f"{self.out}:{rows}: not a judgment line ({problem}); pass --force to start over") from None

    def write(self, ids: list[str], judgments: list[Judgment]) -> None:
        if self._fh is None:
            self._fh = open(self.out, "a", encoding="utf-8")
        self._fh.write("".join(json.dumps(record(i, j, self.reasons), ensure_ascii=False) + "\n"
                               for i, j in zip(ids, judgments)))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def finish(self) -> None:
        self.close()
        if not self.out.exists():
            self.out.touch()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


PART = re.compile(r"part-(\d{12})-(\d{9})\.parquet$")


class ParquetOut:
    def __init__(self, out: Path, reasons: bool, part_rows: int):
        self.out, self.reasons, self.part_rows = out, reasons, part_rows
        self.dir = parts_dir(out)
        self.done = 0
        self._cols: dict[str, list] = {name: [] for name in self.schema().names}  # the part being filled

    def schema(self):
        import pyarrow as pa

        fields = [("id", pa.string()), ("relevant", pa.bool_()), ("score", pa.float64())]
        return pa.schema(fields + ([("reason", pa.string())] if self.reasons else []))

    def _parts(self) -> list[tuple[int, int, Path]]:
        if not self.dir.exists():
            return []
        found = []
        for p in self.dir.iterdir():
            m = PART.match(p.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), p))
            else:  # a part cut by a kill before its rename
                p.unlink()
        return sorted(found)

    def resume(self) -> tuple[int, str | None]:
        import pyarrow.parquet as pq

        done = 0
        parts = self._parts()
        for start, n, path in parts:
            if start != done:
                raise LoragError(f"{self.dir}: part files do not follow on from each other at row {done}; "
                                 "pass --force to start over")
            done += n
        self.done = done
        if not parts:
            return 0, None
        last = pq.read_table(parts[-1][2], columns=["id"]).column("id")
        return done, last[len(last) - 1].as_py()

    def write(self, ids: list[str], judgments: list[Judgment]) -> None:
        self._cols["id"].extend(ids)
        self._cols["relevant"].extend(j.relevant for j in judgments)
        self._cols["score"].extend(j.score for j in judgments)
        if self.reasons:
            self._cols["reason"].extend(None if j.reason is None else json.dumps(j.reason, ensure_ascii=False)
                                        for j in judgments)
        while len(self._cols["id"]) >= self.part_rows:
            self._flush(self.part_rows)

    def _flush(self, n: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {name: values[:n] for name, values in self._cols.items()}
        for values in self._cols.values():
            del values[:n]
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{self.done:012d}-{n:09d}.parquet"
        tmp = self.dir / (name + ".tmp")
        pq.write_table(pa.table(cols, schema=self.schema()), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        self.done += n

    def finish(self) -> None:
        """Write the last part, then combine the parts into ``out`` (one part in memory at a time)."""
        import pyarrow.parquet as pq

        if self._cols["id"]:
            self._flush(len(self._cols["id"]))
        tmp = self.out.with_name(self.out.name + ".tmp")
        with pq.ParquetWriter(tmp, self.schema()) as writer:
            for _, _, path in self._parts():
                for batch in pq.ParquetFile(path).iter_batches(batch_size=self.part_rows):
                    writer.write_batch(batch)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out)

    def close(self) -> None:  # unwritten rows stay in the judgment cache
        pass

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def open_output(out: Path, fmt: str, reasons: bool, part_rows: int):
    return ParquetOut(out, reasons, part_rows) if fmt == "parquet" else JsonlOut(out, reasons)
