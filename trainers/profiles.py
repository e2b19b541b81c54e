"""Preset hyper-parameters. "quick" fits the demo on a 2-core CPU: dropout 0 (on CPU the
random masks of 150 adapter inputs cost ~35% of a step), documents clipped to 48 tokens
(title and lead carry the topic), the prompt prefix every pair shares run once per batch (exact:
trainers/loss.py). Stage 1 trains the binary objective (" true" vs " false" logits)
on half-positive batches at lr 1e-3, warmed up over 10% of the steps and at least 10 (a 4-step
warm-up spiked the loss and held float32 runs at ln 2 for 35 steps), in bf16 autocast where
lorag_harness/backends/precision.py measured it faster, with the step count fitted to a time
budget (bench/s1_datasets.py, bench/s1_cpu.py and docs/training.md have the runs that chose this).
Stage 2 at lr 1.5e-4: at 3e-4 its reason-only update cut S1's ranking of the training pairs
from AUC 0.931 to 0.858 (1.5e-4: 0.917; 1e-4: 0.924, but reason loss 0.54 instead of 0.32).
``lorag demo`` trains shorter than these (trainers/demo.py DEMO)."""

PROFILES = {
    "quick": {
        # steps: what fits 10 minutes, at most 2 epochs of the pairs left after the validation slice
        "s1": {"epochs": 2.0, "time_budget": 600.0, "batch_size": 16, "lr": 1e-3, "warmup": 0.1, "warmup_min_steps": 10, "dropout": 0.0,
               "max_doc_tokens": 48, "objective": "binary", "batches": "balanced", "precision": "auto",
               "val_pairs": 128, "val_every": 20, "patience": 4, "prefix_cache": True},
        "s2": {"steps": 40, "batch_size": 8, "lr": 1.5e-4, "warmup": 0.1, "dropout": 0.0, "max_doc_tokens": 48,
               "precision": "auto", "prefix_cache": True},
        # lorag train reranker / cls (trainers/rerank_train.py RerankConfig, trainers/cls_train.py ClsConfig)
        # two epochs at lr 2e-4: 80 steps at 1e-4 under-trained it (bench/rerankers.py, docs/graders.md)
        "reranker": {"epochs": 2.0, "batch_size": 16, "lr": 2e-4, "max_length": 96, "precision": "auto"},
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
