"""Training speed of stage 1, in one run (python bench/training.py [--steps 6]): ours (logits
only at the loss positions, examples cut after the relevant value) vs the naive loop (full logits
over the whole prompt + JSON answer), and each change alone. Also the cost of LoRA dropout on CPU.
Results go to bench/results.json (key "training")."""
from __future__ import annotations

import argparse
import json
import time

import torch


from lorag_harness.backends import lm
from lorag_harness.data.builtin import orange_loader
from lorag_harness.trainers.batching import collate
from lorag_harness.trainers.examples import build_examples
from lorag_harness.trainers.loss import full_logits_loss, masked_loss
from lorag_harness.trainers.train import TrainConfig, prepare_model
from bench.results_file import update



def time_steps(model, batches, loss_fn) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    loss_fn(model, batches[0]).backward()  # warm-up
    opt.zero_grad()
    start = time.perf_counter()
    for b in batches:
        loss_fn(model, b).backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-doc-tokens", type=int, default=48, help="the quick profile's document budget")
    args = ap.parse_args()
    ds = orange_loader("reuters-r8")(None, {"n_train": 2 * args.steps * args.batch_size})
    tok = lm.load_tokenizer()
    batches, tokens = {}, {}
    for trim in (True, False):
        ex = build_examples(tok, ds.train_pairs, ds, "s1", max_doc_tokens=args.max_doc_tokens, trim=trim)
        ex.sort(key=lambda e: len(e.input_ids))  # length-sorted, dynamic padding
        batches[trim] = [collate(ex[i : i + args.batch_size], tok.pad_token_id)
                         for i in range(0, args.steps * args.batch_size, args.batch_size)]
        tokens[trim] = sum(int(b["attention_mask"].sum()) for b in batches[trim])
    out = {"steps": args.steps, "batch_size": args.batch_size, "max_doc_tokens": args.max_doc_tokens,
           "tokens_cut": tokens[True], "tokens_whole_answer": tokens[False]}
    variants = {"ours": (masked_loss, True), "masked_logits_whole_answer": (masked_loss, False),
                "full_logits_cut": (full_logits_loss, True), "naive": (full_logits_loss, False)}
    for dropout in (0.0, 0.05):
        model = prepare_model(TrainConfig(dropout=dropout))
        for name, (fn, trim) in variants.items():
            t = time_steps(model, batches[trim], fn)
            out[f"{name}_dropout{dropout}"] = {"steps_per_s": args.steps / t, "examples_per_s": args.steps * args.batch_size / t}
        del model
    for name in [v for v in variants if v != "ours"]:
        for d in ("0.0", "0.05"):
            out[f"speedup_ours_over_{name}_dropout{d}"] = (out[f"ours_dropout{d}"]["steps_per_s"]
                                                          / out[f"{name}_dropout{d}"]["steps_per_s"])
    out["speedup_dropout0_over_0.05_ours"] = out["ours_dropout0.0"]["steps_per_s"] / out["ours_dropout0.05"]["steps_per_s"]
    update("training", out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
