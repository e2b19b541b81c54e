"""float32 or bfloat16, chosen by measurement, for training and grading; and the machine it ran on.

``resolve("auto")`` is bf16 on CUDA where ``torch.cuda.is_bf16_supported()``, and on CPU only where a
matmul probe (bfloat16 autocast vs float32, the shapes of a small decoder's MLP) measured it faster:
for ``work="batch"`` (training, scoring: ~256 tokens a matmul) and, apart, for ``work="decode"``
(greedy generation: one token for each of 8 rows, where casting the weights costs more than bfloat16 saves).
The probe takes well under a second and is cached per machine under the cache folder, keyed by CPU
model, torch version, torch's CPU capability and the instruction-set caps set in the environment.
``LORAG_PRECISION_PROBE=fp32|bf16`` forces the probe's answer (tests, CI). An explicit ``bf16``
(scoring, training and decoding alike) where it is slow runs, with one warning line.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time

from lorag_harness.errors import LoragError

PRECISIONS = ("auto", "fp32", "bf16")
PROBE_ENV = "LORAG_PRECISION_PROBE"
PROBE_FILE = "precision-probe.json"
PROBE_VERSION = 3  # part of the cache key: a changed probe measures again
# x (tokens x hidden) @ W.T (hidden -> intermediate): SmolLM2-135M's MLP shapes, a batch of ~256 tokens
PROBE_SHAPE = (256, 576, 1536)
DECODE_SHAPE = (8, 576, 1536)  # a decoding step: one new token for each of 8 rows
WORKS = ("batch", "decode")
_warned: set = set()
_probed: dict = {}


def check(precision: str | None, option: str = "--precision") -> str:
    """The precision name, checked (None: auto)."""
    value = "auto" if precision in (None, "") else str(precision)
    if value not in PRECISIONS:
        raise LoragError(f"{option} must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return value


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_capability() -> str:
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - older torch
        return "unknown"


# instruction-set caps of oneDNN, MKL (float32 matmuls) and ATen: an AVX2-only CPU emulated on a newer one
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def isa_limits() -> dict[str, str]:
    """The instruction-set caps set in the environment (empty on a machine run as it is)."""
    return {k: os.environ[k] for k in ISA_LIMITS if os.environ.get(k)}


def cpu_quota(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> float | None:
    """The CPUs a cgroup limit gives this process (``docker --cpus``, a CI runner's share), the smallest
    along its cgroup path (v1 ``cpu.cfs_quota_us``, v2 ``cpu.max``); None when nothing limits it."""
    from pathlib import Path

    try:
        lines = Path(proc).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2
            base, read = Path(root), _v2_limit
        elif "cpu" in controllers.split(","):
            base = next((Path(root, n) for n in (controllers, "cpu", "cpu,cpuacct") if Path(root, n).is_dir()), None)
            read = _v1_limit
        else:
            continue
        if base is None:
            continue
        parts = [p for p in path.strip().split("/") if p and p != ".."]
        for depth in range(len(parts) + 1):  # the cgroup and each ancestor up to the mount's root
            limit = read(base.joinpath(*parts[:depth]))
            if limit is not None:
                limits.append(limit)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return round(min(limits), 2) if limits and min(limits) < usable else None  # at or above the cores: no limit


def _v1_limit(folder) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    return None


def _v2_limit(folder) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    return None


def machine_key() -> str:
    """What the probe's answer depends on: CPU model, torch version, its CPU capability, the ISA caps."""
    import torch

    parts = [str(PROBE_VERSION), cpu_model(), torch.__version__, cpu_capability(),
             *(f"{k}={v}" for k, v in isa_limits().items())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def measure(shape: tuple[int, int, int] = PROBE_SHAPE, rounds: int = 10) -> dict:
    """Time one linear layer in float32 and under bfloat16 autocast, interleaved, on one thread, in
    that thread's CPU time (a shared machine's other processes do not count), best of up to ``rounds``;
    stops early once one is clearly faster (bfloat16 over 3x slower after 2 rounds, or under half the
    time after 3). bf16 counts as faster below 0.9 of the float32 time."""
    import torch

    n, k, m = shape
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(n, k, generator=gen), torch.randn(m, k, generator=gen)

    def fp32():
        torch.nn.functional.linear(x, w)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.linear(x, w)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = {fp32: float("inf"), bf16: float("inf")}
    try:
        with torch.inference_mode():
            fp32(), bf16()  # warm-up: kernels chosen, code generated
            for i in range(rounds):
                for fn in (fp32, bf16):  # CPU time of this thread: time spent descheduled is not counted
                    start = time.thread_time()
                    fn()
                    best[fn] = min(best[fn], time.thread_time() - start)
                if (i >= 1 and best[bf16] > 3 * best[fp32]) or (i >= 2 and best[bf16] < 0.5 * best[fp32]):
                    break
    finally:
        torch.set_num_threads(threads)
    t32, t16 = best[fp32], best[bf16]
    return {"fp32_s": t32, "bf16_s": t16, "ratio": t16 / t32, "faster": "bf16" if t16 < 0.9 * t32 else "fp32",
            "shape": list(shape), "gflops_fp32_1thread": 2 * n * k * m / t32 / 1e9}


def probe(refresh: bool = False) -> dict:
    """This CPU's probe result (``faster``: fp32 | bf16, ``ratio``: bf16 time / fp32 time), from the
    cache when this machine was probed before; ``LORAG_PRECISION_PROBE`` forces the answer."""
    forced = os.environ.get(PROBE_ENV, "").strip().lower()
    if forced:
        if forced not in ("fp32", "bf16"):
            raise LoragError(f"{PROBE_ENV}={forced!r}: use fp32 or bf16")
        return {"faster": forced, "ratio": 0.5 if forced == "bf16" else None, "forced": True}
    key = machine_key()
    if key in _probed and not refresh:
        return _probed[key]
    from lorag_harness.paths import cache_dir

    path = cache_dir() / PROBE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    result = stored.get(key) if not refresh else None
    if not (isinstance(result, dict) and result.get("faster") in ("fp32", "bf16")
            and (result.get("decode") or {}).get("faster") in ("fp32", "bf16")):
        decode = {k: v for k, v in measure(DECODE_SHAPE).items() if k in ("faster", "ratio", "shape")}
        result = measure() | {"decode": decode, "cpu": cpu_model(), "capability": cpu_capability(),
                              "measured": time.strftime("%Y-%m-%d")}
        stored[key] = result
        try:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(stored, indent=1), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache: probe again next time
    _probed[key] = result
    return result


def resolve(precision: str | None = "auto", device_type: str | None = None, option: str = "--precision",
            warn: bool = True, work: str = "batch") -> str:
    """``fp32`` or ``bf16`` for ``precision`` (auto | fp32 | bf16) on ``device_type`` (default: cuda
    when available, else cpu), for ``work`` (batch: training and scoring; decode: greedy generation).
    An explicit bf16 where it is slow runs, with one warning line."""
    import torch

    value = check(precision, option)
    if work not in WORKS:
        raise ValueError(f"work must be one of {WORKS}, not {work!r}")
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if value == "fp32":
        return "fp32"
    if device_type == "cuda":
        native = torch.cuda.is_bf16_supported()
        if value == "bf16" and not native and warn:
            _warn_once(("cuda",), f"warning: {option} bf16 on a GPU without native bfloat16: it will be slow "
                                  "(--precision auto picks fp32 there)")
        return "bf16" if value == "bf16" or native else "fp32"
    if device_type != "cpu":
        return "fp32" if value == "auto" else "bf16"
    result = probe()
    if value == "auto":
        return (result.get("decode") or result)["faster"] if work == "decode" else result["faster"]
    if result["faster"] == "fp32" and warn:
        ratio = result.get("ratio")
        by = f"bfloat16 matmuls measured {ratio:.1f}× slower than float32" if ratio else "bfloat16 is the slower one"
        _warn_once(("cpu",), f"warning: {option} bf16 on this CPU ({cpu_capability()}, no fast bfloat16): {by}; "
                             "it will run, slowly (--precision auto picks fp32 here)")
    return "bf16"


def bf16_slowdown(used: str, device_type: str = "cpu") -> float | None:
    """How many times slower bf16 runs than fp32 on this CPU where ``used`` is bf16 and the probe measured
    it at least twice as slow (an explicit --precision bf16 there); else None (also when
    LORAG_PRECISION_PROBE forces the answer: it carries no measured ratio)."""
    if used != "bf16" or device_type != "cpu":
        return None
    result = probe()
    ratio = result.get("ratio")
    return ratio if result.get("faster") == "fp32" and ratio and ratio >= 2 else None


def _warn_once(key, line: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(line, file=sys.stderr, flush=True)


def autocast(precision: str, device_type: str = "cpu"):
    """The compute context of a resolved precision: bfloat16 autocast for bf16, nothing for fp32."""
    if precision == "bf16":
        import torch

        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def machine(precision: str | None = None, decode: str | None = None) -> dict:
    """The machine a timing was measured on: CPU model, torch's CPU capability, cores (and a cgroup's
    CPU quota, if one limits them), torch version,
    the precision used (``decode``: that of generated text, where it differs) and the GPU, if any; for
    manifests, reports and bench/results.json."""
    import torch

    info = {"cpu": cpu_model(), "cpu_capability": cpu_capability(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    if precision is not None:
        info["precision"] = precision
    if decode is not None and decode != precision:
        info["precision_decode"] = decode
    quota = cpu_quota()
    if quota is not None:
        info["cpu_quota"] = quota
    limits = isa_limits()
    if limits:
        info["isa_limits"] = limits
    with contextlib.suppress(OSError, AttributeError):
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def describe(info: dict) -> str:
    """One line for a printed timing: 'Intel Xeon … (AVX512, 2 cores, torch 2.x, fp32)'."""
    bits = [info.get("cpu_capability"), f"{info.get('cores')} cores", f"torch {info.get('torch')}"]
    if info.get("cpu_quota") is not None:
        bits.insert(2, f"a CPU quota of {info['cpu_quota']:g}")
    if info.get("precision"):
        bits.append(info["precision"] + (f" (decoding {info['precision_decode']})" if info.get("precision_decode") else ""))
    if info.get("load_average") is not None:
        bits.append(f"load {info['load_average']}")
    if info.get("isa_limits"):
        bits.append("limited by " + " ".join(f"{k}={v}" for k, v in info["isa_limits"].items()))
    return f"{info.get('cpu')} ({', '.join(str(b) for b in bits if b)})"


def grading_precision(quant: str | None, precision: str | None = "auto", device_type: str | None = None,
                      work: str = "batch") -> str:
    """The resolved precision of a model grader: ``quant="bf16"`` (the former option) means bf16."""
    return resolve("bf16" if quant == "bf16" else precision, device_type, work=work)
