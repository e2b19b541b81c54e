"""``lorag pairs CORPUS --out pairs.jsonl``: training pairs from an unlabelled corpus
(pseudo-queries, rank-window negatives, provenance per pair; resumable, seeded)."""
from __future__ import annotations

import click
from rich.console import Console

from lorag_harness.errors import LoragError
from lorag_harness.hookspecs import hookimpl

err = Console(stderr=True)


def parse_window(text: str) -> tuple[int, int]:
    """``30-100`` (1-based ranks, inclusive) -> (29, 100), the 0-based window ``negatives.draw`` takes."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise LoragError(f"--window must be LO-HI (ranks, e.g. 31-100), not {text!r}") from None
    if not 1 <= lo <= hi:
        raise LoragError(f"--window must be LO-HI with 1 <= LO <= HI, not {text!r}")
    return lo - 1, hi


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("corpus")
    @click.option("--out", required=True, help="Pairs file to write (JSON lines; resumed if it exists)")
    @click.option("--queries", "kinds", default="title,ict", show_default=True,
                  help="Pseudo-queries: title, ict (inverse cloze), generate (an LM writes them), comma-separated")
    @click.option("--negatives", type=click.IntRange(min=0), default=1, show_default=True, help="Negatives per pseudo-query")
    @click.option("--window", default="31-100", show_default=True,
                  help="BM25 ranks the negatives are drawn from (never the top ones: they may be relevant)")
    @click.option("--generator", default=None, help="generate: HF model id or folder [the base LM]")
    @click.option("--round-trip-k", type=click.IntRange(min=1), default=20, show_default=True,
                  help="generate: keep a query only if BM25 ranks its passage in this top k")
    @click.option("--max-docs", type=click.IntRange(min=1), default=None, help="A seeded sample of the passages")
    @click.option("--seed", type=int, default=13, show_default=True)
    @click.option("--overwrite", is_flag=True, help="Start again instead of resuming an existing --out")
    def pairs(corpus, out, kinds, negatives, window, generator, round_trip_k, max_docs, seed, overwrite):
        """Training pairs from CORPUS (beir:DIR, jsonl:DIR|FILE, a .jsonl corpus or a text file, one passage a line)."""
        import random
        from pathlib import Path

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from lorag_harness.data.synthetic import PairOptions, QueryWriter, read_passages, write_pairs

        opts = PairOptions(kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), negatives=negatives,
                           window=parse_window(window), round_trip_k=round_trip_k, seed=seed, generator=generator)
        opts.check()
        target = Path(out)
        if target.is_dir():
            raise LoragError(f"--out {out}: is a folder, not a file")
        passages = read_passages(corpus)
        only = None
        if max_docs and max_docs < len(passages):
            only = {passages[i].doc_id for i in random.Random(seed).sample(range(len(passages)), max_docs)}
        writer = QueryWriter(generator) if "generate" in opts.kinds else None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("pairs", total=len(only) if only else len(passages))
            counts = write_pairs(passages, target, opts, resume=not overwrite, writer=writer, only=only,
                                 progress=lambda i, n: progress.update(task, completed=i))
        err.print(f"pairs: {counts['positives']} positive and {counts['negatives']} negative pairs from "
                  f"{counts['documents']} passages" + (f" ({counts['resumed']} done before, resumed)" if counts["resumed"] else "")
                  + f" → {target}")
