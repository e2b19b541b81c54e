"""Checks run before any work: model, embedder and adapter options, the output path.

Each raises :class:`LoragError` with one line naming the option or file. Checks read small files
(configs, manifests) and never load model weights."""
from __future__ import annotations

import json
import os
from pathlib import Path

from lorag_harness.errors import LoragError


def _hub_id(name: str) -> bool:
    """Could ``name`` be a Hugging Face hub id ("gpt2", "org/model") rather than a local path?"""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1:
        return False
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except Exception:  # noqa: BLE001 - any rejection means "not a hub id"
        return False
    return True


def read_json(path: Path, option: str | None = None, kinds: tuple = (dict,)):
    """A JSON file's object (or list, with ``kinds=(list,)``); every failure one line naming the file (and
    ``option``, when given)."""
    where = f"{option}: {path}" if option else str(path)
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoragError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise LoragError(f"{where}: is a folder") from None
    except UnicodeDecodeError:
        raise LoragError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise LoragError(f"{where}:{e.lineno}: invalid JSON ({e.msg})") from None
    except OSError as e:
        raise LoragError(f"{where}: {e.strerror or e}") from None
    if not isinstance(value, kinds):
        raise LoragError(f"{where}: expected a JSON {'object' if kinds == (dict,) else 'list'}, found {type(value).__name__}")
    return value


def _local_folder(name: str, option: str) -> Path | None:
    """The local folder ``name`` names (None for a hub id); a missing path or a file is an error."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LoragError(f"{option} {name}: is a file; pass the model folder")
        return path
    if _hub_id(name):
        return None  # fetched from the hub (or its local cache) when first used
    raise LoragError(f"{option} {name}: no such folder")


def check_base_model(name: str | None, option: str = "--base-model") -> None:
    """A causal LM folder (config.json of a causal LM type), a hub id, or the packaged default."""
    from lorag_harness.backends import lm

    if name in (None, "", lm.DEFAULT_MODEL):
        lm.packaged_gguf()
        return
    folder = _local_folder(name, option)
    if folder is None:
        config = read_json(_hub_config(name, option), option)
    else:
        if not (folder / "config.json").is_file():
            raise LoragError(f"{option} {name}: not a model folder (no config.json)")
        config = read_json(folder / "config.json", option)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    kind, archs = config.get("model_type"), config.get("architectures") or []
    heads = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (archs and not any(str(a).endswith(heads) for a in archs)):
        raise LoragError(f"{option} {name}: not a causal language model (model_type {kind!r}, "
                         f"architectures {config.get('architectures')})")


def _hub_config(name: str, option: str) -> Path:
    """The config.json of a hub model id: from the local Hugging Face cache, else fetched now (a few
    kB), so that an id that cannot be loaded stops the run before any work."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    try:
        return Path(hf_hub_download(name, "config.json"))
    except Exception as e:  # noqa: BLE001 - offline, unknown id, gated: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"{option} {name}: no such folder, and not loadable from the Hugging Face hub "
                         f"({type(e).__name__}: {first[:160]})") from None


def check_model_kind(folder: str | Path, wanted: tuple[str, ...], where: str) -> None:
    """A folder whose lorag manifest names another kind of model than ``wanted`` is refused, with the
    grader spec that loads it (a cross-encoder read as an embedder runs with a random pooling, and the
    reverse with a random head; neither may pass as a result). Another tool's manifest says nothing here."""
    from lorag_harness.api.model_kinds import GRADER_OF_KIND, read_owner

    kind = read_owner(Path(folder).expanduser())[0]
    if kind in GRADER_OF_KIND and kind not in wanted:
        raise LoragError(f"{where}: {folder} holds a model of kind {kind!r} (its manifest.json); grade it with "
                         f"-g {GRADER_OF_KIND[kind]}:{folder}")


def check_embedder(name: str | None, option: str = "--embedder") -> None:
    """A sentence-transformers folder (modules.json or config.json), a hub id, or the packaged default."""
    from lorag_harness.backends.embedder import DEFAULT_EMBEDDER, resolve_embedder

    if name in (None, "", DEFAULT_EMBEDDER):
        resolve_embedder(name)
        return
    folder = _local_folder(name, option)
    if folder is None:
        return
    check_model_kind(folder, ("embedding",), f"{option} {name}" if option.startswith("--") else option)
    if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
        raise LoragError(f"{option} {name}: not a sentence-transformers model folder (no modules.json or config.json)")
    for f, kinds in (("modules.json", (list,)), ("config.json", (dict,))):  # sentence-transformers: modules.json is a list
        if (folder / f).is_file():
            read_json(folder / f, option, kinds)


def check_adapter(folder: str, base_model: str | None, spec: str) -> dict:
    """A peft adapter folder (adapter_config.json) whose manifest, if any, is valid and names this
    base model; returns the manifest ({} if none)."""
    from lorag_harness.backends import lm

    where = f"grader {spec}"
    path = Path(folder).expanduser()
    if not path.exists():
        raise LoragError(f"{where}: adapter folder {folder} does not exist")
    if not path.is_dir():
        raise LoragError(f"{where}: {folder} is a file; pass the adapter folder")
    check_model_kind(path, ("s1-adapter", "s2-adapter"), where)  # S1 and S2 adapters grade as either
    if not (path / "adapter_config.json").is_file():
        raise LoragError(f"{where}: {folder} is not a peft adapter folder (no adapter_config.json)")
    read_json(path / "adapter_config.json", where)
    manifest = read_json(path / "manifest.json", where) if (path / "manifest.json").is_file() else {}
    trained_on = manifest.get("base_model")
    wanted = base_model or lm.DEFAULT_MODEL
    if trained_on and str(trained_on) != str(wanted):
        raise LoragError(f"{where}: {folder} was trained on {trained_on}, not {wanted}: pass --base-model {trained_on}")
    return manifest


def is_report(path: Path) -> bool:
    """Whether ``path`` holds a report ``lorag bench`` wrote (JSON, markdown or HTML), or nothing."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if not head.strip():
            return True
        if head.startswith(b"# lorag-harness report") or b"<title>lorag-harness" in head:
            return True
        if head.lstrip().startswith(b"{"):
            value = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(value, dict) and {"dataset_fingerprint", "results", "graders"} <= value.keys()
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False


def check_replaceable(out: str | Path, option: str = "--out", fix: str | None = None) -> None:
    """Refuse to overwrite a file that is not a lorag report (pass --force to)."""
    path = Path(out).expanduser()
    if path.is_file() and not is_report(path):
        raise LoragError(f"{option} {out}: exists and is not a lorag report; "
                         + (fix or f"pass --force to overwrite it, or choose another {option}"))


def same_file(a: str | Path, b: str | Path) -> bool:
    """``a`` and ``b`` are one file: the same path, or the same inode (a hard link, a symlink)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(out: str | Path, option: str = "--out") -> Path:
    """Create the folder of ``out`` and prove a file can be written there (the report is written
    as ``<out>.tmp`` then renamed), before the run; nothing is left behind."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise LoragError(f"{option} {out}: is a folder; pass a file name such as {Path(out) / 'report.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoragError(f"{option} {out}: cannot create the folder {path.parent}: {e.strerror or e}") from None
    probe = path.with_name(path.name + ".tmp")
    try:
        with open(probe, "w", encoding="utf-8"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise LoragError(f"{option} {out}: cannot write there: {e.strerror or e}") from None
    return path
