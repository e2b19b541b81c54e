"""Built-in graders, registered through the same hook as third-party ones.

This folder is the ``lorag_harness.graders`` package (``[tool.setuptools.package-dir]`` in pyproject.toml
maps it; the same from a checkout, an editable install and a wheel). Each grader is registered by name
as ``"module:factory"``: its module (and torch) is imported only when the grader is used.
A new built-in grader: a module here with a factory ``make_x(arg, context)``, and one line below.
"""
from lorag_harness.hookspecs import hookimpl

GRADERS = {
    "base": ("lm_graders:make_base", "Base causal LM, prompted; P(relevant) from true/false logits."),
    "s1": ("lm_graders:make_s1", "Base LM + S1 adapter (loss on the relevant value): s1:ADAPTER_DIR."),
    "s2": ("lm_graders:make_s2", "Base LM + S2 adapter (loss on the reason): s2:ADAPTER_DIR."),
    "s2-json": ("lm_graders:make_s2_json",
                "S2 with constrained decoding: valid JSON, topics from the label set: s2-json:ADAPTER_DIR."),
    "embedding": ("embedding:make_embedding",
                  "Sentence-transformers cosine similarity, threshold calibrated on train pairs."),
    "cross-encoder": ("cross_encoder:make_cross_encoder",
                      "A sentence-transformers cross-encoder (HF id or folder); threshold from its manifest."),
    "cls": ("cls_head:make_cls", "A decoder LM with a 2-class head (lorag train cls); threshold from its manifest."),
    "openai": ("openai_judge:make_openai",
               "LLM judge over an OpenAI-compatible API: openai:MODEL or openai:MODEL@umbrela (--judge-* options)."),
}


@hookimpl
def register_graders(register):
    for name, (target, description) in GRADERS.items():
        register(name, f"{__name__}.{target}", description)


@hookimpl
def register_grader_options(register):
    from .judge_options import JUDGE_OPTIONS

    for option in JUDGE_OPTIONS:
        register(option)
