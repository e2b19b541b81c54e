"""``lorag cache``: the judgment cache."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from lorag_harness.cli.output import console


@click.group()
def cache():
    """The judgment cache."""


@cache.command("clear")
@click.option("--cache", "cache_path", default=None, help="Cache file (default: in the cache folder)")
def cache_clear(cache_path):
    """Delete every stored judgment. A damaged file is moved aside (<file>.corrupt-<time>) and a fresh
    cache started."""
    from lorag_harness.evaluation.cache import CacheError, JudgmentCache, set_aside

    try:
        store = JudgmentCache(cache_path)
    except CacheError as e:
        if e.kind != "damaged":
            raise
        moved = set_aside(e.path)
        store = JudgmentCache(e.path)
        console.print(f"{e.path} was damaged ({e.problem}): moved it to {moved} and started a fresh cache", soft_wrap=True)
        store.close()
        return
    try:
        console.print(f"removed {store.clear()} judgments from {store.path}")
    finally:
        store.close()


@cache.command("info")
@click.option("--cache", "cache_path", default=None, help="Cache file (default: in the cache folder)")
def cache_info(cache_path):
    """How many judgments are stored (read-only: works on a read-only file or folder)."""
    from lorag_harness.evaluation.cache import JudgmentCache, default_path

    path = Path(cache_path) if cache_path else default_path()
    if not path.exists():
        console.print(json.dumps({"path": str(path), "judgments": 0, "exists": False}))
        return
    store = JudgmentCache(path, readonly=True)
    try:
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        console.print(json.dumps({"path": store.path, "judgments": store.count(), "writable": writable}))
    finally:
        store.close()
