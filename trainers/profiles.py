"""Preset hyper-parameters. "quick" fits the demo on a 2-core CPU: dropout 0 (on CPU the
random masks of 150 adapter inputs cost ~40% of a step), documents clipped to 48 tokens
(title and lead carry the topic), a high learning rate for few steps."""

PROFILES = {
    "quick": {
        "s1": {"steps": 150, "batch_size": 8, "lr": 1e-3, "dropout": 0.0, "max_doc_tokens": 48},
        "s2": {"steps": 40, "batch_size": 8, "lr": 5e-4, "dropout": 0.0, "max_doc_tokens": 48},
    },
    "full": {
        "s1": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4},
        "s2": {"epochs": 2.0, "batch_size": 8, "lr": 2e-4},
    },
}
