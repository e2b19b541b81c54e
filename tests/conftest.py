import contextlib
import json
import os
import threading

import pytest

# precision "auto" resolves to fp32 in tests on every machine (exact comparisons); tests of the choice
# itself set LORAG_PRECISION_PROBE (lorag_harness/backends/precision.py) to what they need
os.environ.setdefault("LORAG_PRECISION_PROBE", "fp32")

# pytest-xdist workers share the cores: torch's default (one thread a core) in each worker oversubscribes
# them, and its OpenMP threads then wait on each other (a tiny-model training step 3-5x slower). Each worker,
# and the processes its tests start, gets its share (set before torch is imported; this file imports none
# of torch, transformers or the package's models, so the xdist controller never loads them).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)


@pytest.fixture(scope="session")
def tokenizer():
    """The real SmolLM2 tokenizer (from the packaged GGUF, converted once per machine)."""
    from lorag_harness.backends import lm

    return lm.load_tokenizer(None)


def make_tiny_llama(tokenizer, seed: int = 0, layers: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def make_tiny_bert(out, num_labels=1, seed=0, head=True):
    """A 2-layer BERT (hidden 32) with the packaged MiniLM tokenizer (files only): a sequence classifier
    with ``num_labels`` logits, or without ``head`` the bare encoder (a sentence-transformers folder, mean pooling)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    from lorag_harness.backends.embedder import resolve_embedder

    tok = AutoTokenizer.from_pretrained(resolve_embedder(None))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256, **({"num_labels": num_labels} if head else {}))
    torch.manual_seed(seed)
    (BertForSequenceClassification if head else BertModel)(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """``make_tiny_bert``'s one-logit classifier, saved once per session (read only)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A 2-layer Llama (hidden 64) with the real tokenizer, saved as a model folder."""
    out = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_llama(tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def r8_small():
    from lorag_harness.data.builtin import orange_loader

    return orange_loader("reuters-r8")(None, {"n_train": 40, "n_eval": 24, "corpus_size": 64, "n_queries": 10})


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def register_plugin():
    """register(plugin, name): a plug-in on the CLI's plugin manager for this test only (unregistered after it)."""
    from lorag_harness.plugins import pm

    added = []

    def register(plugin, name: str):
        pm.register(plugin, name=name)
        added.append(plugin)
        return plugin

    yield register
    for plugin in reversed(added):
        pm.unregister(plugin)


@pytest.fixture
def jsonl_writer():
    return write_jsonl


@pytest.fixture(scope="session")
def tiny_lm_grader(tiny_model_dir):
    """The prompted base grader on the tiny Llama (documents clipped to 40 tokens)."""
    from lorag_harness.graders.lm_graders import LMGrader

    return LMGrader("base", base_model=tiny_model_dir, max_doc_tokens=40)


@pytest.fixture(scope="session")
def served_tiny(tiny_lm_grader):
    """`lorag serve`'s app over ``tiny_lm_grader`` on a loopback port; yields the base URL."""
    pytest.importorskip("fastapi")
    from lorag_harness.serving.command import serving
    from lorag_harness.serving.app import create_app

    with serving(create_app(tiny_lm_grader, "tiny")) as url:
        yield url


def pytest_addoption(parser):
    parser.addoption("--integration", action="store_true",
                     help="also run the slow integration tests (packaged models, servers, Ray, TRL, wheel build)")


def pytest_collection_modifyitems(config, items):
    """Integration tests run only with --integration (.ci/run passes it); the default run stays fast."""
    if config.getoption("--integration"):
        return
    kept, slow = [], []
    for item in items:
        (slow if item.get_closest_marker("integration") else kept).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept


@contextlib.contextmanager
def loopback_http(srv):
    """A loopback HTTP server (127.0.0.1, port 0) running in a thread: yields its /v1 base URL, then stops it."""
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def word_overlap(query: str, document: str, min_letters: int = 1) -> float:
    """Share of the query's words (runs of at least ``min_letters`` letters) found in the document: the
    score of the test graders that stand in for a real one."""
    import re

    words = re.compile(f"[a-z]{{{min_letters},}}")
    q = set(words.findall(query.lower()))
    return len(q & set(words.findall(document.lower()))) / max(len(q), 1)
