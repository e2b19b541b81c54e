"""Preset hyper-parameters. "quick" fits the demo on a 2-core CPU: dropout 0 (on CPU the
random masks of 150 adapter inputs cost ~35% of a step), documents clipped to 48 tokens
(title and lead carry the topic), the prompt prefix every pair shares run once per batch (exact:
trainers/loss.py). Stage 1 trains the binary objective (" true" vs " false" logits)
on half-positive batches at lr 1e-3, warmed up over the first quarter of the steps (a 4-step
warm-up spiked the loss and held float32 runs at ln 2 for 35 steps), in bf16 autocast where
lorag_harness/backends/precision.py measured it faster, with the step count fitted to a time
budget (bench/s1_datasets.py, bench/s1_cpu.py and docs/training.md have the runs that chose this).
Stage 2: 24 steps at lr 3e-4. Against 40 steps at 1.5e-4 (float32, emulated AVX2, 24 R8 pairs)
its reasons were better (valid JSON 0.96 vs 0.79, query topic 0.92 vs 0.75) in 60% of the steps,
for a lower ranking of its calibration pairs (AUC 0.899 vs 0.927): stage 2 is for the reason, S1
stays the relevance grader (docs/training.md)."""

PROFILES = {
    "quick": {
        # steps: what fits 10 minutes, at most 2 epochs of the pairs left after the validation slice
        "s1": {"epochs": 2.0, "time_budget": 600.0, "batch_size": 16, "lr": 1e-3, "warmup": 0.25, "dropout": 0.0,
               "max_doc_tokens": 48, "objective": "binary", "batches": "balanced", "precision": "auto",
               "val_pairs": 128, "val_every": 20, "patience": 4, "prefix_cache": True},
        "s2": {"steps": 24, "batch_size": 8, "lr": 3e-4, "warmup": 0.1, "dropout": 0.0, "max_doc_tokens": 48,
               "precision": "auto", "prefix_cache": True, "calibration_pairs": 128},
        # lorag train reranker / cls (trainers/rerank_train.py RerankConfig, trainers/cls_train.py ClsConfig)
        # one epoch at lr 2e-4 (80 steps at 1e-4 under-trained it: bench/rerankers.py, docs/graders.md)
        "reranker": {"epochs": 1.0, "batch_size": 16, "lr": 2e-4, "max_length": 96, "precision": "auto",
                     "calibration_pairs": 256},
        "cls": {"epochs": 1.0, "batch_size": 16, "mode": "lora", "max_doc_tokens": 48, "precision": "auto"},
    },
    "full": {
        "s1": {"epochs": 2.0, "batch_size": 16, "lr": 2e-4, "warmup": 0.1},
        "s2": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4, "warmup": 0.1},
        "reranker": {"epochs": 2.0, "batch_size": 16, "lr": 5e-5, "max_length": 256},
        "cls": {"epochs": 2.0, "batch_size": 16, "mode": "lora", "max_doc_tokens": 128, "precision": "auto"},
    },
}

DEFAULT_PROFILE = "quick"
