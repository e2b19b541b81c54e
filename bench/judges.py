"""LLM judges over HTTP: throughput of openai: against `lorag serve`, and agreement of the judge styles.

(a) pairs/s on the same Reuters R8 eval pairs: the packaged SmolLM2 `base` grader in process,
    then the `openai:` judge against `lorag serve -g base` (a subprocess on loopback) at
    concurrency 1 and 8 (the server's micro-batcher grades concurrent requests together).
(b) Cohen's kappa with the labels of the judge styles json and umbrela, with the packaged
    SmolLM2 behind `transformers serve` (generation; parsed text, it returns no logprobs), next
    to the in-process `base` grader (P(true) from logits) on the same pairs.

Writes bench/results.json (key "judges"). Run: python bench/judges.py [--pairs 64]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
from sklearn.metrics import cohen_kappa_score

from lorag_harness.backends import lm
from lorag_harness.graders.openai_judge import OpenAIJudge
from lorag_harness.api.registry import GraderContext
from lorag_harness.evaluation.runner import build_grader, load_dataset
from bench.results_file import update

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, log: Path, timeout: float = 600) -> subprocess.Popen:
    fh = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"{cmd} did not start within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def timed(grader, pairs):
    start_t = time.perf_counter()
    out = grader.grade(pairs)
    return out, len(pairs) / (time.perf_counter() - start_t)


def agreement(pairs, judgments) -> dict:
    labels = [p.label for p in pairs]
    decided = [(p.label, j.relevant) for p, j in zip(pairs, judgments) if j.relevant is not None]
    as_false = [bool(j.relevant) for j in judgments]  # an undecided pair counts as "not relevant"
    return {
        "kappa": round(float(cohen_kappa_score(labels, as_false)), 4),
        "kappa_decided": round(float(cohen_kappa_score(*zip(*decided))), 4) if len({d for _, d in decided}) > 1 else None,
        "accuracy": round(sum(a == b for a, b in zip(labels, as_false)) / len(labels), 4),
        "parse_failures": sum(j.relevant is None for j in judgments),
        "transient_failures": sum(j.raw_text.startswith("error: ") for j in judgments),
        "relevant_rate": round(sum(as_false) / len(as_false), 4),
    }


def throughput(pairs, dataset, args, logdir: Path) -> dict:
    """Interleaved rounds (the order rotates) so that load from other jobs hits every mode alike."""
    local = build_grader("base", GraderContext(dataset=dataset))
    local.grade(pairs[:2])  # load the model
    local_out = local.grade(pairs)
    port = free_port()
    server = start([sys.executable, "-m", "lorag_harness", "serve", "-g", "base", "--port", str(port),
                    "--train-pairs", "20"], port, logdir / "lorag-serve.log")
    try:
        url = f"http://127.0.0.1:{port}"
        judges = {f"openai_c{c}": OpenAIJudge("base", base_url=url + "/v1", concurrency=c, timeout=600, retries=1)
                  for c in args.concurrency}
        for judge in judges.values():
            judge.grade(pairs[:2])
        modes = ["in_process", *judges]
        rates = {m: [] for m in modes}
        rows = {m: {} for m in modes}
        for r in range(args.rounds):
            for m in modes[r % len(modes):] + modes[: r % len(modes)]:
                if m == "in_process":
                    _, rate = timed(local, pairs)
                else:
                    before = httpx.get(f"{url}/health", timeout=10).json()
                    out, rate = timed(judges[m], pairs)
                    after = httpx.get(f"{url}/health", timeout=10).json()
                    rows[m] = {"server_batches": after["batches"] - before["batches"],
                               "same_decisions_as_in_process": sum(a.relevant == b.relevant for a, b in zip(out, local_out)),
                               "max_score_difference": max(abs(a.score - b.score) for a, b in zip(out, local_out))}
                rates[m].append(round(rate, 3))
                print(r, m, rates[m][-1], rows[m], flush=True)
        for m in modes:
            rows[m]["pairs_per_s"] = rates[m]
            rows[m]["ratio_to_in_process_per_round"] = [round(a / b, 3) for a, b in zip(rates[m], rates["in_process"])]
        return {"pairs": len(pairs), "rounds": args.rounds, **rows, "agreement_in_process": agreement(pairs, local_out)}
    finally:
        stop(server)


def styles(pairs, args, logdir: Path) -> dict:
    model = str(lm.resolve_model_path(None))
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    # no --continuous-batching: on CPU it reserves a KV cache of about half the machine's memory
    server = start([str(exe), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                   port, logdir / "transformers-serve.log")
    try:
        out = {}
        for style in ("json", "umbrela"):
            judge = OpenAIJudge(model, base_url=f"http://127.0.0.1:{port}/v1", style=style,
                                concurrency=args.judge_concurrency, timeout=900, retries=2,
                                max_tokens=args.json_tokens if style == "json" else args.umbrela_tokens)
            judgments, rate = timed(judge, pairs[: args.style_pairs])
            out[style] = {**agreement(pairs[: args.style_pairs], judgments), "pairs_per_s": round(rate, 3),
                          "max_tokens": judge.max_tokens,
                          "examples": [j.raw_text[:120] for j in judgments[:3]]}
            print(style, out[style], flush=True)
            save({"styles_partial": {"pairs": args.style_pairs, **out}})  # kept if a later style is cut short
        local = build_grader("base", GraderContext())  # the same pairs, P(true) from logits in process
        out["in_process_base"] = agreement(pairs[: args.style_pairs], local.grade(pairs[: args.style_pairs]))
        return {"server": "transformers serve (no logprobs: parsed text)",
                "pairs": min(len(pairs), args.style_pairs), **out}
    finally:
        stop(server)


def save(results: dict) -> None:
    update("judges", change=lambda mine: mine.update(results))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--judge-concurrency", type=int, default=2)
    ap.add_argument("--style-pairs", type=int, default=32, help="Pairs judged by each style (generation is slow)")
    ap.add_argument("--json-tokens", type=int, default=16)
    ap.add_argument("--umbrela-tokens", type=int, default=48)
    ap.add_argument("--skip", choices=["throughput", "styles"], default=None)
    ap.add_argument("--logdir", type=Path, default=Path("/tmp"))
    args = ap.parse_args()
    dataset = load_dataset("reuters-r8", {"n_train": 20})
    pairs = dataset.eval_pairs[: args.pairs]
    results = {"dataset": "reuters-r8 eval pairs (embedded default)", "cpus": os.cpu_count()}
    for part, run in (("throughput", throughput), ("styles", styles)):
        if args.skip == part:
            continue
        load, start_t = os.getloadavg()[0], time.perf_counter()
        out = run(pairs, dataset, args, args.logdir) if part == "throughput" else run(pairs, args, args.logdir)
        results[part] = {**out, "seconds": round(time.perf_counter() - start_t, 1), "load_1min": [load, os.getloadavg()[0]]}
    save(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
