"""Preset hyper-parameters. "quick" fits the demo on a 2-core CPU: dropout 0 (on CPU the
random masks of 150 adapter inputs cost ~40% of a step) and documents clipped to 96 tokens."""

PROFILES = {
    "quick": {
        "s1": {"steps": 60, "batch_size": 4, "lr": 3e-4, "dropout": 0.0, "max_doc_tokens": 96},
        "s2": {"steps": 60, "batch_size": 4, "lr": 3e-4, "dropout": 0.0, "max_doc_tokens": 96},
    },
    "full": {
        "s1": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4},
        "s2": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4},
    },
}
