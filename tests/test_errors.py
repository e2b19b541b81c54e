"""Errors from the user's side: checks before work, one-line messages, partial results kept, cache recovery."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lorag_harness import Judgment, hookimpl
from lorag_harness.api.grader import Grader
from lorag_harness.evaluation.cache import JudgmentCache
from lorag_harness.cli.app import cli

SMALL = ["--eval-pairs", "8", "--train-pairs", "16", "--s2-pairs", "2", "--rag-queries", "10", "--rag-k", "5",
         "--corpus-size", "30", "--max-doc-tokens", "32"]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line_error(result, code=2) -> str:
    """The result failed with ``code`` and exactly one line starting with "error:", no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def pairs_file(tmp_path):
    """24 labelled pairs on two topics (no corpus: rag-p5 cannot run on it)."""
    rows = []
    for i in range(12):
        rows.append({"query": "crude oil prices", "document": f"Oil output rose {i} percent as crude stocks fell.",
                     "label": True})
        rows.append({"query": "crude oil prices", "document": f"The bank cut its lending rate by {i} points.",
                     "label": False})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_readonly(path: Path):
    """chmod, and for root (who ignores modes) the immutable attribute; skip where neither holds."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            path.chmod(0o755 if path.is_dir() else 0o644)
            pytest.skip("running as root on a file system without chattr +i: nothing is read-only")
    return path


@pytest.fixture
def readonly():
    made = []

    def make(path):
        made.append(make_readonly(path))
        return path

    yield make
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755 if path.is_dir() else 0o644)


# --- plug-in graders that misbehave ---------------------------------------------------------------

class Counting(Grader):
    """Relevant when the document mentions oil; remembers every call (to prove nothing was graded)."""

    calls: list = []

    def __init__(self, mode: str = "good"):
        self.name, self.mode = f"test-{mode}", mode

    def grade(self, pairs, *, reasons=False, advance=None):
        Counting.calls.append((self.mode, len(pairs), reasons))
        if self.mode == "raises" and reasons:
            raise RuntimeError("model server went away")
        out = [Judgment("oil" in p.document.lower(), 0.9 if "oil" in p.document.lower() else 0.1,
                        {"query_topic": "oil", "document_topic": "oil", "summary": p.document[:20]} if reasons else None)
               for p in pairs]
        if advance:
            advance(len(pairs))
        return out[:-1] if self.mode == "short" else out


class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("test", lambda arg, context: Counting(arg or "good"), "misbehaving test grader")


@pytest.fixture
def test_grader(register_plugin):
    register_plugin(Plugin(), "test-errors-plugin")
    Counting.calls = []
    return Counting


# --- checks before work ----------------------------------------------------------------------------

@pytest.mark.parametrize("make_out", [
    lambda tmp, ro: ro(tmp / "locked") / "report.json",  # a folder that cannot be written
    lambda tmp, ro: tmp / "a-file.txt" / "report.json",  # a "folder" that is a file
])
def test_unwritable_out_fails_before_grading(tmp_path, pairs_file, test_grader, readonly, make_out):
    (tmp_path / "locked").mkdir()
    (tmp_path / "a-file.txt").write_text("x")
    out, cache = make_out(tmp_path, readonly), tmp_path / "c.sqlite"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache, "--out", out)
    line = one_line_error(result)
    assert "--out" in line and str(out) in line
    assert test_grader.calls == [] and (not cache.exists() or JudgmentCache(cache).count() == 0)


@pytest.mark.parametrize("name", ["report.txt", "report"])
def test_out_suffix_that_names_no_format_is_refused_before_grading(tmp_path, pairs_file, test_grader, name):
    out = tmp_path / name
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--no-cache", "--out", out)
    assert ".json, .md or .html" in one_line_error(result) and str(out) in result.output
    assert test_grader.calls == [] and not out.exists()
    written = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--no-cache", "--out", out,
                  "--format", "markdown")
    assert written.exit_code == 0 and out.read_text().startswith("# lorag-harness report")


def test_demo_out_dir_that_cannot_be_made_is_named_before_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run("demo", "--out-dir", blocker / "demo")
    line = one_line_error(result)
    assert line.startswith("error: --out-dir ") and str(blocker) in line and "stage" not in result.output


def test_unknown_second_grader_fails_before_the_first_runs(tmp_path, pairs_file, test_grader):
    cache = tmp_path / "c.sqlite"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test,wizard", "-t", "s1-relevance", "--cache", cache)
    assert "unknown grader 'wizard'" in one_line_error(result)
    assert test_grader.calls == [] and JudgmentCache(cache).count() == 0


def test_task_that_does_not_fit_the_dataset_is_refused_up_front(tmp_path, pairs_file, test_grader):
    cache = tmp_path / "c.sqlite"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance,rag-p5", "--cache", cache)
    line = one_line_error(result)
    assert "rag-p5" in line and "no retrieval corpus" in line and "-t s1-relevance" in line
    assert test_grader.calls == [] and JudgmentCache(cache).count() == 0


def test_default_tasks_skip_what_the_dataset_cannot_feed_and_say_so(tmp_path, pairs_file, test_grader):
    """The README's `lorag bench -d jsonl:my_pairs.jsonl -g embedding` with the default tasks."""
    out = tmp_path / "r.json"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "--no-cache", "--out", out)
    assert result.exit_code == 0, result.output
    assert "rag-p5: skipped" in result.output and "no reference reasons" in result.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"s1-relevance", "s2-reasoning"}
    assert any("rag-p5: skipped" in n for n in report["notes"]) and "partial" not in report


# --- never lose finished work ----------------------------------------------------------------------

def test_plugin_raising_midway_keeps_finished_results(tmp_path, pairs_file, test_grader):
    out, cache = tmp_path / "r.json", tmp_path / "c.sqlite"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test:good,test:raises", "-t", "s1-relevance,s2-reasoning",
                 "--cache", cache, "--out", out)
    line = one_line_error(result, code=1)
    assert "internal: RuntimeError: model server went away" in line and "--debug" in line
    assert "PARTIAL RESULTS" in result.output and "s1-relevance" in result.output
    report = json.loads(out.read_text())
    assert report["partial"]["grader"] == "test:raises" and report["partial"]["task"] == "s2-reasoning"
    assert report["partial"]["missing"] == ["test:raises · s2-reasoning"]
    assert set(report["results"]["s1-relevance"]) == {"test:good", "test:raises"}
    assert set(report["results"]["s2-reasoning"]) == {"test:good"}
    assert report["results"]["s1-relevance"]["test:good"]["metrics"]["accuracy"]["value"] == 1.0
    n1 = len(report["results"]["s1-relevance"]["test:good"]["records"])
    n2 = len(report["results"]["s2-reasoning"]["test:good"]["records"])
    assert JudgmentCache(cache).count() == 2 * n1 + n2  # both graders' s1 pairs and the good one's reasons


def test_grader_breaking_the_contract_midway_writes_partial_report(tmp_path, pairs_file, test_grader):
    out = tmp_path / "r.md"
    result = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test,test:short", "-t", "s1-relevance", "--no-cache",
                 "--out", out)
    line = one_line_error(result)
    assert "grader test-short: grade() returned" in line and "judgments for" in line
    assert "PARTIAL RESULTS" in result.output and out.is_file() and "test" in out.read_text()


def test_debug_shows_the_traceback(tmp_path, pairs_file, test_grader):
    args = ["bench", "-d", f"jsonl:{pairs_file}", "-g", "test:raises", "-t", "s2-reasoning", "--no-cache"]
    quiet = run(*args)
    assert "Traceback" not in quiet.output and quiet.exit_code == 1
    for loud in (run("--debug", *args), run(*args, env={"LORAG_DEBUG": "1"})):
        assert loud.exit_code == 1
        assert "Traceback" in loud.output and "RuntimeError: model server went away" in loud.output


# --- the judgment cache ----------------------------------------------------------------------------

def test_corrupt_cache_run_info_and_clear(tmp_path, pairs_file, test_grader):
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"SQLite format 3\0" + os.urandom(4096 - 16))  # an SQLite file, garbage after the header
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache))
    assert str(cache) in line and "--no-cache" in line and "lorag cache clear" in line
    assert test_grader.calls == []
    assert "lorag cache clear" in one_line_error(run("cache", "info", "--cache", cache))
    cleared = run("cache", "clear", "--cache", cache)
    assert cleared.exit_code == 0, cleared.output
    moved = list(tmp_path.glob("c.sqlite.corrupt-*"))
    assert len(moved) == 1 and str(moved[0].name) in cleared.output and len(moved[0].read_bytes()) == 4096
    info = run("cache", "info", "--cache", cache)
    assert info.exit_code == 0 and json.loads(info.output)["judgments"] == 0
    again = run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache)
    assert again.exit_code == 0, again.output
    assert JudgmentCache(cache).count() > 0


@pytest.mark.parametrize("lock", ["file", "folder"])
def test_read_only_cache_run_info_and_clear(tmp_path, pairs_file, test_grader, readonly, lock):
    folder = tmp_path / "store"
    folder.mkdir()
    cache = folder / "c.sqlite"
    assert run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache).exit_code == 0
    calls = len(test_grader.calls)
    readonly(cache if lock == "file" else folder)
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test:other", "-t", "s1-relevance",
                              "--cache", cache))
    assert str(cache) in line and "--no-cache" in line
    assert len(test_grader.calls) == calls  # nothing graded
    info = run("cache", "info", "--cache", cache)
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["judgments"] == JudgmentCache(cache, readonly=True).count() > 0
    assert str(cache) in one_line_error(run("cache", "clear", "--cache", cache))


@pytest.mark.parametrize("kind", ["sqlite", "text"])
def test_someone_elses_file_is_left_alone(tmp_path, pairs_file, test_grader, kind):
    cache = tmp_path / "other.db"
    if kind == "sqlite":
        db = sqlite3.connect(cache)
        db.execute("CREATE TABLE invoices (n INTEGER)")
        db.execute("INSERT INTO invoices VALUES (1)")
        db.commit()
        db.close()
        problem = "not a judgments cache (tables: invoices)"
    else:  # e.g. a report passed as --cache by mistake
        cache.write_text('{"results": {}}\n')
        problem = "a text file, not an SQLite database"
    before = cache.read_bytes()
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache))
    assert problem in line and "lorag leaves it alone" in line
    assert problem in one_line_error(run("cache", "info", "--cache", cache))
    assert problem in one_line_error(run("cache", "clear", "--cache", cache))
    assert cache.read_bytes() == before and not list(tmp_path.glob("other.db.corrupt-*"))


def filled_cache(path, rows=3000):
    store = JudgmentCache(path)
    store.put_many("g", [(f"pair-{i}", Judgment(True, 0.9, raw_text="x" * 100)) for i in range(rows)], False)
    store.close()
    return path


def test_cache_damaged_in_the_middle_is_refused_before_work(tmp_path, pairs_file, test_grader):
    cache = filled_cache(tmp_path / "c.sqlite")
    size = cache.stat().st_size
    with open(cache, "r+b") as fh:  # one page in the middle overwritten: the file still opens and takes writes
        fh.seek(size // 4096 // 2 * 4096)
        fh.write(os.urandom(4096))
    before = cache.read_bytes()
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache))
    assert "quick_check" in line and f"lorag cache clear --cache {cache}" in line
    assert test_grader.calls == [] and cache.read_bytes() == before  # nothing graded, nothing appended
    assert "quick_check" in one_line_error(run("cache", "info", "--cache", cache))
    cleared = run("cache", "clear", "--cache", cache)
    assert cleared.exit_code == 0 and len(list(tmp_path.glob("c.sqlite.corrupt-*"))) == 1, cleared.output


@pytest.mark.parametrize("stored", ["{not json", '{"relevant": "maybe", "score": 0.5, "reason": null, '
                                                '"raw_text": "", "parse_ok": true}', "[1, 2]"])
def test_a_bad_cache_row_is_blamed_on_the_cache(tmp_path, pairs_file, test_grader, stored):
    cache = tmp_path / "c.sqlite"
    args = ["bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache]
    assert run(*args).exit_code == 0
    db = sqlite3.connect(cache)
    db.execute("UPDATE judgments SET judgment = ? WHERE rowid = (SELECT MIN(rowid) FROM judgments)", (stored,))
    db.commit()
    db.close()
    line = one_line_error(run(*args))
    assert f"judgment cache {cache}: a stored judgment is not valid" in line
    assert f"lorag cache clear --cache {cache}" in line and line.startswith("error: judgment cache")
    assert run("cache", "clear", "--cache", cache).exit_code == 0
    assert run(*args).exit_code == 0


@pytest.mark.parametrize("content", [b"PAR1" + bytes(range(256)) * 16 + b"PAR1", os.urandom(4096)],
                         ids=["parquet", "random-bytes"])
def test_cache_clear_leaves_a_file_that_is_not_a_cache_alone(tmp_path, content):
    data = tmp_path / "data.parquet"
    data.write_bytes(content)
    line = one_line_error(run("cache", "clear", "--cache", data))
    assert "not an SQLite database" in line and "lorag leaves it alone" in line
    assert data.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


def test_empty_file_is_a_fresh_cache(tmp_path, pairs_file, test_grader):
    cache = tmp_path / "empty.sqlite"
    cache.write_bytes(b"")
    assert json.loads(run("cache", "info", "--cache", cache).output)["judgments"] == 0
    assert run("bench", "-d", f"jsonl:{pairs_file}", "-g", "test", "-t", "s1-relevance", "--cache", cache).exit_code == 0
    assert JudgmentCache(cache).count() > 0


# --- input files and model options -----------------------------------------------------------------

def test_non_utf8_file_is_one_line_naming_it(tmp_path, test_grader):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"query": "café", "document": "crème", "label": true}\n'.encode("latin-1"))
    line = one_line_error(run("bench", "-d", f"jsonl:{path}", "-g", "test", "--no-cache"))
    assert str(path) in line and "UTF-8" in line


@pytest.fixture
def adapter_dir(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return folder


@pytest.mark.parametrize("args, expected", [
    (["-g", "base", "--base-model", "/nowhere/model"], "--base-model /nowhere/model: no such folder"),
    (["-g", "base", "--base-model", "{tmp}"], "not a model folder (no config.json)"),
    (["-g", "base", "--base-model", "{embedder}"], "not a causal language model (model_type 'bert'"),
    (["-g", "embedding", "--embedder", "./no/such/embedder"], "--embedder ./no/such/embedder: no such folder"),
    (["-g", "embedding", "--embedder", "{tmp}"], "not a sentence-transformers model folder"),
    (["-g", "s1:{tmp}/nowhere"], "adapter folder {tmp}/nowhere does not exist"),
    (["-g", "s1:{tmp}"], "is not a peft adapter folder (no adapter_config.json)"),
])
def test_bad_model_options_are_one_line_before_work(tmp_path, pairs_file, test_grader, args, expected):
    from lorag_harness.backends.embedder import resolve_embedder

    fill = {"tmp": str(tmp_path), "embedder": resolve_embedder(None)}
    args = [a.format(**fill) for a in args]
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-t", "s1-relevance", "--no-cache", *args))
    assert expected.format(**fill) in line


@pytest.mark.parametrize("manifest, expected", [
    ("{not json", "manifest.json:1: invalid JSON"),
    ('["a list"]', "expected a JSON object"),
    (json.dumps({"base_model": "some/other-model"}), "was trained on some/other-model, not"),
])
def test_broken_adapter_manifest_is_one_line(adapter_dir, pairs_file, test_grader, manifest, expected):
    (adapter_dir / "manifest.json").write_text(manifest)
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-g", f"s1:{adapter_dir}", "-t", "s1-relevance",
                              "--no-cache"))
    assert expected in line and str(adapter_dir) in line


# --- options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--eval-pairs", "--train-pairs", "--s2-pairs", "--rag-queries", "--rag-k",
                                    "--corpus-size", "--batch-size", "--max-doc-tokens"])
def test_bench_counts_below_one_are_refused(option, test_grader):
    result = run("bench", "-g", "test", "--no-cache", option, "0")
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert "-3 is not in the range" in run("bench", "-g", "test", "--no-cache", option, "-3").output
    assert test_grader.calls == []


@pytest.mark.parametrize("args", [
    ["train", "s1", "--out", "x", "--steps", "0"], ["train", "s1", "--out", "x", "--batch-size", "-1"],
    ["train", "s1", "--out", "x", "--train-pairs", "0"], ["train", "s1", "--out", "x", "--lr", "0"],
    ["train", "s1", "--out", "x", "--r", "0"], ["train", "s1", "--out", "x", "--max-doc-tokens", "0"],
    ["demo", "--eval-pairs", "0"], ["demo", "--train-pairs", "0"], ["demo", "--s2-pairs", "0"], ["demo", "--rag-queries", "-1"],
    ["train", "s1", "--out", "x", "--val-pairs", "-5"], ["train", "s1", "--out", "x", "--patience", "-1"],
    ["train", "s1", "--out", "x", "--val-every", "0"], ["train", "s1", "--out", "x", "--grad-accum", "0"],
])
def test_train_and_demo_counts_below_one_are_refused(args):
    result = run(*args)
    assert result.exit_code == 2 and "Invalid value for" in result.output


# --- lorag check -----------------------------------------------------------------------------------

def test_check_passes_a_good_grader_and_lists_a_bad_one(pairs_file, test_grader):
    good = run("check", "test", "embedding", "-d", f"jsonl:{pairs_file}")
    assert good.exit_code == 0, good.output
    assert "test: ok" in good.output and "embedding: ok" in good.output
    bad = run("check", "test", "test:short")
    assert bad.exit_code == 1
    assert "test: ok" in bad.output and "test:short: grade(reasons=False): grader test-short: grade() returned 5 " \
                                        "judgments for 6 pairs" in bad.output
    assert "unknown grader 'nope'" in one_line_error(run("check", "test", "nope"))


def test_check_builds_graders_with_the_given_precision_and_batch_size(register_plugin):
    seen = []

    class Recording:
        @hookimpl
        def register_graders(self, register):
            register("ctx", lambda arg, context: seen.append(context) or Counting(), "records its context")

    register_plugin(Recording(), "test-check-context")
    result = run("check", "ctx", "--precision", "fp32", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert [(c.precision, c.batch_size) for c in seen] == [("fp32", 3)]


def test_no_plugin_imports_the_cli():
    """The CLI loads the plugins (trainers.cli registers the demo): a plugin importing the CLI's app
    back is a cycle. Core modules other than the CLI's own must not import it either; the shared option
    decorators (lorag_harness.cli.options) are there for plug-ins and commands to use."""
    import ast

    import lorag_harness

    root = Path(lorag_harness.__file__).parent
    importers = []
    for base in (root, root.parent / "graders", root.parent / "tasks", root.parent / "trainers"):
        for path in base.rglob("*.py"):
            if path.name == "__main__.py" or path.parent.name == "cli":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [f"{'.' * node.level}{node.module or ''}"] if isinstance(node, ast.ImportFrom) else []
                if any((n.startswith("lorag_harness.cli") and n != "lorag_harness.cli.options") for n in names):
                    importers.append(str(path))
    assert importers == []


def test_local_model_rewritten_in_place_gets_a_new_fingerprint(tmp_path, tiny_model_dir, tokenizer):
    """Cached judgments are keyed by the model's files, not only its path (e.g. `lorag merge` again)."""
    import shutil

    from conftest import make_tiny_llama
    from lorag_harness.graders.lm_graders import LMGrader

    folder = tmp_path / "merged"
    shutil.copytree(tiny_model_dir, folder)
    before = LMGrader("base", base_model=str(folder)).fingerprint()
    assert LMGrader("base", base_model=str(folder)).fingerprint() == before
    make_tiny_llama(tokenizer, seed=1).save_pretrained(folder)
    assert LMGrader("base", base_model=str(folder)).fingerprint() != before


def test_grader_variants_are_new_graders_sharing_the_weights(r8_small, tiny_model_dir):
    from lorag_harness.graders.lm_graders import LMGrader, label_topics

    g = LMGrader("base", base_model=tiny_model_dir, prefix_cache=False, max_doc_tokens=32)
    pairs = r8_small.eval_pairs[:6]
    plain = g.grade(pairs)
    cached = g.variant(prefix_cache=True)
    constrained = g.variant(constrained_topics=label_topics(r8_small))
    assert cached.model is g.model and constrained.model is g.model
    assert g.prefix_cache is False and g.constrained_topics is None  # the original is untouched
    assert [j.relevant for j in cached.grade(pairs)] == [j.relevant for j in plain]
    assert constrained.fingerprint() != g.fingerprint() and g.variant(quant="bf16").fingerprint() != g.fingerprint()


INTERRUPTED = r'''
import sys, time
from lorag_harness import Judgment, hookimpl
from lorag_harness.api.grader import Grader
from lorag_harness.cli.app import cli
from lorag_harness.plugins import pm

MARK = sys.argv[1]

class Quick(Grader):
    def __init__(self, slow):
        self.name, self.slow = "quick", slow
    def grade(self, pairs, *, reasons=False, advance=None):
        if self.slow:
            open(MARK, "w").close()
            deadline = time.time() + 60  # bounded: the test interrupts it long before
            while time.time() < deadline:
                time.sleep(0.05)
        if advance:
            advance(len(pairs))
        return [Judgment("oil" in p.document.lower(), 0.5) for p in pairs]

class Plugin:
    @hookimpl
    def register_graders(self, register):
        register("quick", lambda arg, ctx: Quick(arg == "slow"))

pm.register(Plugin(), name="interrupted")
cli(sys.argv[2:])
'''


@pytest.mark.integration  # interrupts a real bench process
def test_ctrl_c_midway_keeps_finished_results(tmp_path, pairs_file):
    import signal
    import time

    script, mark, out = tmp_path / "run.py", tmp_path / "started", tmp_path / "r.json"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script), str(mark), "bench", "-d", f"jsonl:{pairs_file}",
                             "-g", "quick,quick:slow", "-t", "s1-relevance", "--no-cache", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a suite started in the background (`cmd &` in a script)
                            # hands its children SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not mark.exists() and proc.poll() is None:
        time.sleep(0.05)
    assert mark.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "PARTIAL RESULTS" in stdout and "KeyboardInterrupt" in stdout
    report = json.loads(out.read_text())
    assert set(report["results"]["s1-relevance"]) == {"quick"}
    assert report["partial"]["missing"] == ["quick:slow · s1-relevance"]


@pytest.mark.parametrize("args, option, command", [
    (["bench", "--eval-pairs", "0"], "--eval-pairs", "bench"), (["serve", "--port", "99999"], "--port", "serve"),
    (["train", "cls", "--out", "x", "--balance", "sideways"], "--balance", "train cls")])
def test_a_bad_option_value_is_one_line(args, option, command):
    result = CliRunner().invoke(cli, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: Invalid value for") and option in lines[0] and "Usage:" not in result.output
    assert lines[0].endswith(f"(lorag {command} --help)")


def test_a_bad_generator_or_budget_maximum_is_one_line_naming_its_option(tmp_path):
    # the query writer's model is checked before the corpus is read (the corpus here does not exist either)
    line = one_line_error(run("pairs", str(tmp_path / "no-corpus.jsonl"), "--out", str(tmp_path / "p.jsonl"),
                              "--queries", "generate", "--generator", str(tmp_path / "nowhere")))
    assert f"--generator {tmp_path / 'nowhere'}: no such folder" in line
    # below the quick profile's 10-minute budget, which the user did not give
    line = one_line_error(run("train", "s1", "--out", str(tmp_path / "s1"), "--time-budget-max", "5m"))
    assert "--time-budget-max (300 s) must be at least the time budget (600 s; --time-budget sets it)" in line
    line = one_line_error(run("train", "s1", "--out", str(tmp_path / "s1"), "--steps", "4", "--time-budget-max", "5m"))
    assert "--time-budget-max needs a time budget to grow from" in line


@pytest.mark.parametrize("args", [("train", "reranker", "--pos-weight", "nan"), ("train", "embedding", "--lr", "nan"),
                                  ("train", "s1", "--epochs", "inf"), ("bench", "--positive-rate", "nan"),
                                  ("demo", "--positive-rate", "-inf")])
def test_a_float_option_that_is_not_a_finite_number_is_refused_before_work(tmp_path, args):
    r = run(*args, "--out" if args[0] == "train" else "--seed", tmp_path / "m" if args[0] == "train" else 1)
    assert "is not a finite number" in one_line_error(r)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("kind, spec, loads_with", [("embedding", "cross-encoder", "embedding"),
                                                     ("cross-encoder", "embedding", "cross-encoder"),
                                                     ("cross-encoder", "s1", "cross-encoder"),
                                                     ("s1-adapter", "cls", "s1")])
def test_a_model_folder_of_another_kind_is_refused_with_the_grader_that_loads_it(tmp_path, pairs_file, kind, spec,
                                                                                   loads_with):
    folder = tmp_path / "model"  # what `lorag train` writes beside any model: its kind in manifest.json
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "manifest.json").write_text(json.dumps({"kind": kind, "key": "k"}))
    line = one_line_error(run("bench", "-d", f"jsonl:{pairs_file}", "-t", "s1-relevance", "-g", f"{spec}:{folder}"))
    assert f"holds a model of kind '{kind}'" in line and f"-g {loads_with}:{folder}" in line


def test_a_manifest_another_tool_wrote_does_not_stop_a_model_folder(tmp_path):
    from lorag_harness.evaluation.preflight import check_model_kind

    for content in ("[1, 2]", "not json", json.dumps({"kind": "something else"})):
        (tmp_path / "manifest.json").write_text(content)
        check_model_kind(tmp_path, ("embedding",), "--embedder x")  # no error: lorag did not write it
