"""``lorag grade``: one grader over a file of pairs of any size, streamed, resumable, local or on Ray.

Order of work: check the input, the output path and the cache; build the grader; compare with the
manifest of an earlier run (resume it, or refuse to overwrite other work without ``--force``);
then read the input in chunks, grade each chunk (cached judgments reused, new ones stored), and
write it. See ``grade_output`` for what survives a kill.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from lorag_harness.api import registry
from lorag_harness.cli.options import Finite, cache_options, dataset_option, grader_build_options, grader_build_values
from lorag_harness.errors import DataError, LoragError
from lorag_harness.batch.readers import PairFile, file_format, writable_parent
from lorag_harness.batch.writers import (discard, holds_rows, move_aside, open_output, read_manifest, remove_outputs,
                                         restore, write_manifest)


@dataclass
class GradeConfig(registry.GraderSettings):
    grader: str
    input: str
    out: str
    reasons: bool = False
    dataset: str | None = None  # training pairs for graders that calibrate (embedding)
    cache_path: str | None = None  # None: default file; ":memory:" disables reuse
    chunk_rows: int = 256  # rows graded, stored and written per step
    part_rows: int = 16384  # parquet output: rows per part file
    force: bool = False
    executor: str = "local"  # local, ray or ray:ADDRESS
    actors: int = 1
    num_gpus: float = 0.0
    cpus_per_actor: float = 1.0
    ray_timeout: float = 30.0  # seconds to reach a Ray cluster at ray:ADDRESS


@dataclass
class GradeSummary:
    out: str
    rows: int  # judgments in the output
    new: int  # rows written by this run
    resumed_at: int  # rows already written by an earlier run
    seconds: float
    relevant: int = 0
    undecided: int = 0
    complete_before: bool = False

    @property
    def pairs_per_s(self) -> float:
        return self.new / self.seconds if self.seconds > 0 else 0.0


def parse_executor(text: str) -> tuple[str, str | None]:
    kind, _, address = text.partition(":")
    if kind not in ("local", "ray") or (kind == "local" and address):
        raise LoragError(f"--executor {text}: expected local, ray or ray:ADDRESS")
    return kind, (address or None)


def check_config(cfg: GradeConfig) -> tuple[str, str | None]:
    if cfg.chunk_rows < 1 or cfg.part_rows < 1:
        raise LoragError("--chunk-size must be >= 1")
    kind, address = parse_executor(cfg.executor)
    if kind == "local" and (cfg.actors != 1 or cfg.num_gpus or cfg.cpus_per_actor != 1.0):
        raise LoragError("--actors, --num-gpus and --cpus-per-actor apply to --executor ray only")
    if cfg.actors < 1 or cfg.num_gpus < 0 or cfg.cpus_per_actor <= 0:
        raise LoragError("--actors must be >= 1, --num-gpus >= 0 and --cpus-per-actor > 0")
    if not cfg.ray_timeout > 0:
        raise LoragError(f"--ray-timeout must be > 0, not {cfg.ray_timeout}")
    if kind == "ray":
        from lorag_harness.batch.ray_executor import check_address, require_ray

        require_ray()
        if address:
            check_address(address, cfg.ray_timeout)  # before any model loads
    return kind, address


def build(cfg: GradeConfig, pm=None, console: Console | None = None):
    """Every check before work; returns (input, grader, fingerprint, manifest or None if complete)."""
    from lorag_harness.evaluation.cache import JudgmentCache
    from lorag_harness.evaluation.preflight import same_file
    from lorag_harness.evaluation.runner import build_grader, grader_fingerprint, load_dataset

    console = console or Console(stderr=True)
    source = PairFile(cfg.input, "--in")
    out = Path(cfg.out)
    fmt = file_format(out, "--out")
    writable_parent(out, "--out")
    if same_file(out, source.path):
        raise LoragError(f"--out {out}: is the input file")
    JudgmentCache(cfg.cache_path).close()  # a damaged or read-only cache stops here
    source.check_rows()  # every row and id checked before the grader is built
    dataset = load_dataset(cfg.dataset, {}, pm) if cfg.dataset else None
    context = cfg.grader_context(dataset)
    grader = build_grader(cfg.grader, context, pm)
    fp = grader_fingerprint(grader)
    wanted = {"version": 1, "grader": cfg.grader, "fingerprint": fp, "reasons": cfg.reasons,
              "input": source.identity(), "format": fmt, "finished": False}
    if cfg.force:  # the earlier output is replaced when the new one is complete (see run_grade)
        return source, grader, wanted
    old = read_manifest(out)
    if old is None:
        if out.exists() or (out.with_name(out.name + ".parts")).exists():
            raise LoragError(f"--out {out}: exists and was not written by lorag grade; pass --force to overwrite it")
        return source, grader, wanted
    differs = [k for k in ("fingerprint", "reasons", "input", "format") if old.get(k) != wanted[k]]
    if differs:
        what = {"fingerprint": f"grader {old.get('grader')!r} (another fingerprint)", "reasons": "--reasons",
                "input": f"input {old.get('input', {}).get('path')} (size {old.get('input', {}).get('size')})",
                "format": "format"}
        raise LoragError(f"--out {out}: holds {'finished' if old.get('finished') else 'unfinished'} work with another "
                         f"{', '.join(what[k] for k in differs)}; pass --force to overwrite it, or choose another --out")
    if old.get("finished"):
        if out.exists():
            return source, grader, None
        remove_outputs(out)  # the finished output was deleted: grade again (the cache makes it cheap)
        return source, grader, wanted
    return source, grader, old


class SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.1f} pairs/s" if task.speed else "– pairs/s", style="progress.data.speed")


def run_grade(cfg: GradeConfig, pm=None, console: Console | None = None) -> GradeSummary:
    console = console or Console(stderr=True)
    kind, address = check_config(cfg)
    source, grader, manifest = build(cfg, pm, console)
    out = Path(cfg.out)
    if manifest is None:
        rows = read_manifest(out).get("rows", 0)
        return GradeSummary(str(out), rows, 0, rows, 0.0, complete_before=True)
    total = source.rows
    if total == 0:
        raise DataError(source.source, None, "no rows")
    moved = move_aside(out) if cfg.force else []
    fresh = read_manifest(out) is None
    try:
        summary = _grade(cfg, kind, address, source, grader, manifest, out, total, console)
    except BaseException:
        if moved:  # --force and the new run failed: the earlier output comes back
            remove_outputs(out)
            restore(moved)
        elif fresh and not holds_rows(out):  # a run that wrote nothing leaves nothing (no stray manifest)
            remove_outputs(out)
        raise
    discard(moved)
    return summary


def _grade(cfg: GradeConfig, kind, address, source: PairFile, grader, manifest: dict, out: Path, total: int,
           console) -> GradeSummary:
    write_manifest(out, manifest)
    writer = open_output(out, manifest["format"], cfg.reasons, cfg.part_rows)
    done, last_id = writer.resume()
    cursor, input_id = source.locate(done)
    if done and last_id != input_id:
        raise LoragError(f"--out {out}: row {done} has id {last_id!r} but the input's row {done} has id {input_id!r}; "
                         "pass --force to start over")
    summary = GradeSummary(str(out), done, 0, done, 0.0)

    def take(ids, judgments):
        writer.write(ids, judgments)
        summary.new += len(ids)
        summary.relevant += sum(j.relevant is True for j in judgments)
        summary.undecided += sum(j.relevant is None for j in judgments)
        progress.advance(bar, len(ids))

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    start = time.perf_counter()
    try:
        from lorag_harness.progress import progress as heartbeat_progress

        with heartbeat_progress(*columns, console=console) as progress:
            bar = progress.add_task(f"{cfg.grader} · {Path(cfg.input).name}", total=total, completed=done, unit="rows")
            if kind == "ray":
                from lorag_harness.batch.ray_executor import grade_on_ray

                grade_on_ray(source, cursor, total - done, grader, cfg, address, take)
            else:
                grade_locally(source, cursor, grader, cfg, take)
    except KeyboardInterrupt:
        writer.close()
        raise LoragError(f"interrupted after {done + summary.new} of {total} rows; the same command resumes") from None
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - start
    summary.rows = done + summary.new
    if summary.rows != total:  # never report a partial output as finished
        raise LoragError(f"{cfg.input}: {total} rows but {summary.rows} judgments written; the same command resumes")
    writer.finish()
    write_manifest(out, {**manifest, "finished": True, "rows": summary.rows})
    if hasattr(writer, "cleanup"):
        writer.cleanup()
    return summary


def grade_locally(source: PairFile, cursor, grader, cfg: GradeConfig, take) -> None:
    from lorag_harness.evaluation.cache import JudgmentCache
    from lorag_harness.evaluation.runner import make_judge

    cache = JudgmentCache(cfg.cache_path)
    try:
        judge = make_judge(grader, cache, cfg.chunk_rows)
        for rows in source.read(cursor, chunk_rows=cfg.chunk_rows):
            take([r.id for r in rows], judge([r.pair for r in rows], reasons=cfg.reasons))
    finally:
        cache.close()


@click.command("grade")
@click.option("--grader", "-g", required=True, help="One grader spec, e.g. embedding or s1:adapters/s1")
@click.option("--in", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Pairs: .jsonl or .parquet rows of {id?, query, document, label?}")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Judgments: .jsonl or .parquet")
@click.option("--reasons", is_flag=True, help="Also write each judgment's reason")
@dataset_option(None, "Dataset whose training pairs calibrate the grader (embedding)")
@grader_build_options
@cache_options
@click.option("--chunk-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows graded, stored and written per step")
@click.option("--part-rows", type=click.IntRange(min=1), default=16384, hidden=True)
@click.option("--force", is_flag=True, help="Overwrite --out even if it holds other work")
@click.option("--executor", default="local", show_default=True, help="local, ray (a local Ray cluster) or ray:ADDRESS")
@click.option("--actors", type=int, default=1, show_default=True, help="Ray: grader actors")
@click.option("--num-gpus", type=Finite(), default=0.0, show_default=True, help="Ray: GPUs per actor")
@click.option("--cpus-per-actor", type=Finite(), default=1.0, show_default=True, help="Ray: CPUs per actor")
@click.option("--ray-timeout", type=Finite(min=0, min_open=True), default=30.0, show_default=True,
              help="Ray: seconds to reach the cluster at ray:ADDRESS")
def grade(**o):
    """Grade every pair of a file, streaming; a killed run resumes where it stopped."""
    cfg = GradeConfig(
        grader=o["grader"], input=o["input_path"], out=o["out"], reasons=o["reasons"], dataset=o["dataset"],
        **grader_build_values(o),
        cache_path=":memory:" if o["no_cache"] else o["cache_path"], chunk_rows=o["chunk_size"],
        part_rows=o["part_rows"], force=o["force"], executor=o["executor"], actors=o["actors"],
        num_gpus=o["num_gpus"], cpus_per_actor=o["cpus_per_actor"], ray_timeout=o["ray_timeout"])
    from lorag_harness.plugins import pm

    s = run_grade(cfg, pm)
    if s.complete_before:
        click.echo(f"{s.out}: already complete ({s.rows} judgments); --force grades again")
        return
    resumed = f", resumed after {s.resumed_at}" if s.resumed_at else ""
    click.echo(f"{s.rows} judgments in {s.out} ({s.new} written in {s.seconds:.1f} s, {s.pairs_per_s:.1f} pairs/s"
               f"{resumed}); this run: {s.relevant} relevant, {s.new - s.relevant - s.undecided} not, "
               f"{s.undecided} undecided")
