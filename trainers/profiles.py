"""Preset hyper-parameters. "quick" fits the demo on a 2-core CPU: dropout 0 (on CPU the
random masks of 150 adapter inputs cost ~35% of a step), documents clipped to 48 tokens
(title and lead carry the topic). Stage 1 needs batches of 16 and lr 4e-4: at lr 1e-3 with
batches of 8 its loss swung between the classes and settled on the prior (ln 2).
Stage 2 at lr 1.5e-4: at 3e-4 its reason-only update cut S1's ranking of the training pairs
from AUC 0.931 to 0.858 (1.5e-4: 0.917; 1e-4: 0.924, but reason loss 0.54 instead of 0.32)."""

PROFILES = {
    "quick": {
        # one epoch of the pairs left after the validation slice (1,600 pairs: 92 steps); see docs/training.md
        "s1": {"epochs": 1.0, "batch_size": 16, "lr": 4e-4, "warmup": 0.1, "dropout": 0.0, "max_doc_tokens": 48,
               "val_pairs": 128, "val_every": 20, "patience": 4},
        "s2": {"steps": 40, "batch_size": 8, "lr": 1.5e-4, "warmup": 0.1, "dropout": 0.0, "max_doc_tokens": 48,
               "autocast": "bf16"},
        # lorag train reranker / cls (trainers/rerank_train.py RerankConfig, trainers/cls_train.py ClsConfig)
        "reranker": {"steps": 80, "batch_size": 16, "lr": 1e-4, "max_length": 96, "bf16": True},
        "cls": {"steps": 60, "batch_size": 16, "mode": "lora", "max_doc_tokens": 48, "bf16": True},
    },
    "full": {
        "s1": {"epochs": 2.0, "batch_size": 16, "lr": 2e-4, "warmup": 0.1},
        "s2": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4, "warmup": 0.1},
        "reranker": {"epochs": 2.0, "batch_size": 16, "lr": 5e-5, "max_length": 256},
        "cls": {"epochs": 2.0, "batch_size": 16, "mode": "lora", "max_doc_tokens": 128, "bf16": False},
    },
}

DEFAULT_PROFILE = "quick"
