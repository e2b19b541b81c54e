"""Training step cost with and without the shared prompt prefix (TrainConfig.prefix_cache), on the
demo's data (Reuters R8, seed 13) with the quick profile of a stage, SmolLM2 + LoRA, interleaved
steps (forward + backward, no update, so both see the same weights), in process CPU seconds
(user + sys, all threads) and wall seconds, with the machine and load average. Also the cosine and
largest difference between the two LoRA gradients of one batch. AVX2-only CPUs can be emulated
with MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2.

    nice -n 5 .venv/bin/python -m bench.prefix_step NAME [--stage s1] [--steps 4] [--record]"""
from __future__ import annotations

import argparse
import os
import random
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--stage", choices=["s1", "s2"], default="s1")
    ap.add_argument("--steps", type=int, default=4, help="timed steps of each kind (after one warm-up each)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 measures the work "
                    "without the thread synchronisation a loaded machine inflates")
    ap.add_argument("--record", action="store_true", help="Store the run in bench/results.json (prefix_step)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from lorag_harness.backends import lm, precision
    from lorag_harness.evaluation.runner import load_dataset
    from lorag_harness.graders.prefix_cache import common_prefix
    from lorag_harness.trainers.batching import balanced_batches, collate, length_batches
    from lorag_harness.trainers.examples import build_examples
    from lorag_harness.trainers.loss import masked_loss, value_ce
    from lorag_harness.trainers.profiles import PROFILES
    from lorag_harness.trainers.train import TrainConfig, cut_prefix, prepare_model

    values = PROFILES["quick"][args.stage] | {"prefix_cache": False}
    cfg = TrainConfig(stage=args.stage, out="unused", seed=13, init_adapter=None, **values)
    dataset = load_dataset("reuters-r8", {"n_train": 1600, "n_eval": 200, "seed": 13, "positive_rate": 0.5})
    tok = lm.load_tokenizer(None)
    examples = build_examples(tok, dataset.train_pairs, dataset, args.stage, cfg.loss, cfg.weight, cfg.max_doc_tokens)
    p = min(common_prefix([e.input_ids for e in examples]), min(e.loss_positions[0] for e in examples))
    prefix = torch.tensor([examples[0].input_ids[:p]])
    used = precision.resolve(cfg.precision)
    autocast = precision.autocast(used)
    model = prepare_model(cfg)
    with torch.no_grad():  # LoRA B is zero at the start: a small random B gives the gradients something to carry
        for name, w in model.named_parameters():
            if "lora_B" in name:
                w.normal_(0, 1e-3)
    ids = (tok.convert_tokens_to_ids("Ġtrue"), tok.convert_tokens_to_ids("Ġfalse"))
    make = balanced_batches if cfg.batches == "balanced" else length_batches
    batches = make(examples, cfg.batch_size, random.Random(13))[: args.steps + 1]

    def loss_of(batch):
        if args.stage == "s1":
            return value_ce(model, batch, *ids)[1]
        return masked_loss(model, batch)

    def step(rows, shared):
        batch = collate(cut_prefix(rows, p) if shared else rows, tok.pad_token_id)
        if shared:
            batch["prefix_ids"] = prefix
        model.zero_grad(set_to_none=True)
        c, w = time.process_time(), time.perf_counter()
        with autocast:
            loss = loss_of(batch)
        loss.backward()
        return time.process_time() - c, time.perf_counter() - w, batch["input_ids"].numel()

    times = {"plain": [], "shared_prefix": []}
    load0 = os.getloadavg()[0]
    for i, rows in enumerate(batches):  # interleaved; the first of each is a warm-up
        for kind, shared in (("plain", False), ("shared_prefix", True)):
            cpu, wall, tokens = step(rows, shared)
            if i:
                times[kind].append((cpu, wall, tokens))
            print(f"  batch {i} {kind}: cpu {cpu:.2f} s wall {wall:.2f} s tokens {tokens} "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    # one batch's LoRA gradients both ways
    grads = {}
    for kind, shared in (("plain", False), ("shared_prefix", True)):
        step(batches[0], shared)
        grads[kind] = torch.cat([w.grad.flatten().float() for w in model.parameters() if w.requires_grad])
    a, b = grads["plain"], grads["shared_prefix"]
    mean = {k: {"cpu_s": round(sum(t[0] for t in v) / len(v), 3), "wall_s": round(sum(t[1] for t in v) / len(v), 3),
                "padded_tokens": round(sum(t[2] for t in v) / len(v), 1)} for k, v in times.items()}
    row = {"stage": args.stage, "threads": torch.get_num_threads(), "batch_size": cfg.batch_size, "max_doc_tokens": cfg.max_doc_tokens, "prefix_tokens": p,
           "mean_tokens_per_row": round(sum(len(e.input_ids) for e in examples) / len(examples), 1),
           "steps_timed": args.steps, "per_step": mean,
           "cpu_ratio_plain_over_shared": round(mean["plain"]["cpu_s"] / mean["shared_prefix"]["cpu_s"], 2),
           "wall_ratio_plain_over_shared": round(mean["plain"]["wall_s"] / mean["shared_prefix"]["wall_s"], 2),
           "gradient": {"cosine": round(float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0)), 6),
                        "max_abs_diff": float((a - b).abs().max()), "max_abs": float(a.abs().max())},
           "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "env": precision.isa_limits(),
           "machine": precision.machine(used)}
    import json

    print(json.dumps(row, indent=1))
    if args.record:
        from bench.results_file import update

        update("prefix_step", change=lambda mine: mine.__setitem__(args.name, row), precision=used)


if __name__ == "__main__":
    main()
