"""Option decorators shared by commands, declared once: what builds graders, the cache, datasets.

Plug-ins add options of their own graders through the ``register_grader_options`` hook; every command
that builds graders (bench, check, grade, serve) takes them, and their values reach the grader factory
as ``GraderContext.options``."""
from __future__ import annotations

import click

QUANTS = ["none", "nf4", "bf16"]


class Finite(click.FloatRange):
    """A float option (optionally in a range) that refuses nan and ±inf, which a range check lets through."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = click.types.FloatParamType.convert(self, value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        return super()._describe_range() if (self.min, self.max) != (None, None) else "finite"


def precision_option(default: str | None = "auto"):
    return click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=default,
                        show_default=default is not None,
                        help="bfloat16 matmuls (faster where measured so, slightly less exact) or float32; "
                             "auto: bf16 where a matmul probe measured it faster on this machine")


def apply(f, options):
    for opt in reversed(options):
        f = opt(f)
    return f


def base_model_option(help="HF model id or path (default: packaged SmolLM2-135M-Instruct)", **kw):
    return click.option("--base-model", default=None, help=help, **kw)


def embedder_option():
    return click.option("--embedder", default=None, help="sentence-transformers model (default: packaged all-MiniLM-L6-v2)")


def seed_option(default: int = 13):
    return click.option("--seed", type=int, default=default, show_default=True)


def dataset_option(default: str | None = "reuters-r8", help: str = "Dataset spec, e.g. reuters-r8, jsonl:pairs.jsonl, beir:DIR"):
    return click.option("--dataset", "-d", default=default, show_default=default is not None, help=help)


def cache_options(f):
    return apply(f, [
        click.option("--cache", "cache_path", default=None, help="Judgment cache file (default: in the cache folder)"),
        click.option("--no-cache", is_flag=True, help="Do not reuse or store judgments"),
    ])


def plugin_grader_options() -> list:
    """The click options plug-ins register for their graders."""
    from lorag_harness.plugins import pm  # a plug-in that failed to load is reported when first used

    found: list = []
    pm.hook.register_grader_options(register=found.append)
    return found


def grader_build_options(f):
    """What every grader factory may use: models, batch size, document budget, quantisation, plug-in options."""
    return apply(f, [
        base_model_option(),
        embedder_option(),
        click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Rows per generation batch (LM graders score true/false in batches of at least 32)"),
        click.option("--max-doc-tokens", type=click.IntRange(min=1), default=160, show_default=True),
        click.option("--quant", type=click.Choice(QUANTS), default="none", show_default=True,
                     help="LM graders: nf4 weights (bf16: same as --precision bf16)"),
        precision_option(),
        *plugin_grader_options(),
    ])


def grader_option_values(o: dict) -> dict:
    """The values of the plug-in grader options in a command's parameters (GraderContext.options)."""
    names = set()
    for opt in plugin_grader_options():
        names.add(_param_name(opt))
    return {k: o[k] for k in names if k in o}


def grader_build_values(o: dict) -> dict:
    """The values of ``grader_build_options`` as a config's grader settings (``registry.GraderSettings``)."""
    return dict(base_model=o["base_model"], embedder=o["embedder"], batch_size=o["batch_size"],
                max_doc_tokens=o["max_doc_tokens"], quant=quant_value(o["quant"]), precision=precision_value(o),
                grader_options=grader_option_values(o))


def _param_name(decorator) -> str:
    @decorator
    def probe(**_):
        pass

    return probe.__click_params__[-1].name


def quant_value(q: str | None) -> str | None:
    """--quant as the graders take it: nf4 or None (bf16 is a precision)."""
    return None if q in (None, "none", "bf16") else q


def precision_value(o: dict) -> str:
    return "bf16" if o.get("quant") == "bf16" else (o.get("precision") or "auto")


def given(o: dict, name: str):
    """An option's value when the user gave it, else None: the dataset's own default applies (the
    packaged builders default to the CLI's shown values; a jsonl file keeps all its pairs)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
        return None
    return o[name]
