"""LM graders: the prompted base model, and the same model with the S1 or S2 adapter."""
from __future__ import annotations

from lorag_harness.backends import lm
from lorag_harness.backends import prompts
from lorag_harness.api.grader import Grader
from lorag_harness.evaluation.preflight import check_adapter, check_base_model
from lorag_harness.errors import LoragError
from lorag_harness.api.types import Judgment, Pair
from lorag_harness.backends.output_parsing import balanced_end, parse_output

from lorag_harness.api.fingerprints import file_hashes, fingerprint, model_files
from .lm_scoring import generate_continuations, score_true_false
from .prefix_cache import score_with_prefix_cache


class LMGrader(Grader):
    """Relevance from the next-token logits of " true"/" false" after ``{"relevant":``;
    reasons by greedy generation only when a task asks for them."""

    def __init__(self, name: str, base_model: str | None = None, adapter: str | None = None,
                 quant: str | None = None, batch_size: int = 8, max_doc_tokens: int = 160,
                 max_new_tokens: int = 96, threshold: float | None = None, prefix_cache: bool = True,
                 constrained_topics: list[str] | None = None, score_batch_size: int = 32, precision: str = "auto"):
        from lorag_harness.backends.precision import grading_precision

        # quant "bf16" (the former option) is float32 weights with bfloat16 matmuls: precision bf16
        device = lm.device_type(quant)  # the precision of the device the model runs on
        self.precision = grading_precision(quant, precision, device)
        self.decode_precision = grading_precision(quant, precision, device, work="decode")  # reasons: greedy decoding
        quant = None if quant == "bf16" else quant
        self.name, self.base_model, self.adapter, self.quant = name, base_model, adapter, quant
        self.batch_size, self.max_doc_tokens, self.max_new_tokens = batch_size, max_doc_tokens, max_new_tokens
        # P(true) at which a pair counts as relevant: the adapter's calibrated one, else 0.5
        manifest = lm.adapter_manifest(adapter)
        from lorag_harness.evaluation.calibration import check_manifest

        check_manifest(manifest, adapter or name)  # an adapter ranking its calibration pairs upside down
        calibrated = manifest.get("calibration", {}).get("threshold")
        if manifest.get("weak"):
            import warnings

            warnings.warn(f"grader {name}: {adapter} is a weak adapter (its training did not learn relevance: "
                          f"{'; '.join(manifest.get('weak_reasons', [])) or 'see its manifest.json'})",
                          UserWarning, stacklevel=2)
        self.threshold = threshold if threshold is not None else calibrated if calibrated is not None else 0.5
        self.prefix_cache = prefix_cache
        # one forward per batch: scoring runs short suffixes after the cached prefix, so it
        # batches wider than generation (bench: 5.3 -> 10.4 pairs/s from 8 to 32 rows)
        self.score_batch_size = max(score_batch_size, batch_size)
        # reasons decoded under a JSON schema whose topics come from this list (None: free decoding)
        self.constrained_topics = sorted(constrained_topics) if constrained_topics is not None else None
        self._model = self._tok = None

    @property
    def tokenizer(self):
        if self._tok is None:
            self._tok = lm.load_tokenizer(self.adapter if self.adapter and _has_tokenizer(self.adapter) else self.base_model)
        return self._tok

    @property
    def model(self):
        if self._model is None:
            self._model = lm.load_model(self.base_model, self.adapter, self.quant, merge=True)
        return self._model

    def variant(self, **changes) -> "LMGrader":
        """A new grader with some constructor arguments changed (a grader is never reconfigured
        while in use); it shares this one's loaded model and tokenizer when the weights are the same."""
        import inspect

        args, kwargs = self._init_args
        bound = inspect.signature(LMGrader.__init__).bind(self, *args, **kwargs)
        params = {k: v for k, v in bound.arguments.items() if k != "self"}
        params.update(changes)
        other = LMGrader(**params)
        same_weights = (other.base_model, other.adapter) == (self.base_model, self.adapter) and \
            (other.quant in lm.FLOAT_WEIGHTS) == (self.quant in lm.FLOAT_WEIGHTS)  # bf16: float32 weights too
        if same_weights:
            other._model, other._tok = self._model, self._tok
        return other

    def fingerprint(self) -> str:
        return fingerprint(
            kind="lm", model=lm.resolve_model_path(self.base_model) if self.base_model else lm.DEFAULT_MODEL,
            **model_files(self.base_model, lm.DEFAULT_MODEL),
            adapter=file_hashes(self.adapter), template=prompts.template_hash(),
            quant="bf16" if self.precision == "bf16" else self.quant, decode=self.decode_precision,
            max_doc_tokens=self.max_doc_tokens, max_new_tokens=self.max_new_tokens, threshold=self.threshold,
            constrained=self.constrained_topics,
        )

    def encode(self, pair: Pair, answer_prefix: str) -> list[int]:
        return prompts.encode(self.tokenizer, pair.query, pair.document, answer_prefix, self.max_doc_tokens)

    def token_id(self, text: str) -> int:
        return prompts.single_token(self.tokenizer, text)

    def grade(self, pairs: list[Pair], *, reasons: bool = False, advance=None) -> list[Judgment]:
        with lm.compute(self.precision, self.model.device.type):
            judgments = self._grade(pairs, reasons, advance)
        if reasons:
            with lm.compute(self.decode_precision, self.model.device.type):
                self._add_reasons(pairs, judgments, advance)
        return judgments

    def _grade(self, pairs: list[Pair], reasons: bool, advance) -> list[Judgment]:
        seqs = [self.encode(p, prompts.PREFILL) for p in pairs]
        ids = (self.token_id(" true"), self.token_id(" false"), self.tokenizer.pad_token_id)
        step = None if reasons else advance
        if self.prefix_cache:  # the instruction (and a query shared by several pairs) is run once
            scores = score_with_prefix_cache(self.model, seqs, [p.query for p in pairs], *ids, self.score_batch_size, step)
        else:
            scores = score_true_false(self.model, seqs, *ids, self.score_batch_size, step)
        return [Judgment(relevant=s >= self.threshold, score=s, raw_text=prompts.PREFILL + (" true" if s >= self.threshold else " false"))
                for s in scores]

    def _add_reasons(self, pairs, judgments, advance) -> None:
        heads = [prompts.REASON_PREFILL.format(value="true" if j.relevant else "false") for j in judgments]
        texts = [""] * len(pairs)
        # constrained decoding needs one parser per prefilled head (true / false); free decoding batches all rows
        keys = heads if self.constrained_topics is not None else [None] * len(heads)
        for key in dict.fromkeys(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            allowed = None
            if key is not None:
                from .constrained import ReasonConstraint

                allowed = ReasonConstraint(self.tokenizer, self.constrained_topics, key)
            gens = generate_continuations(self.model, self.tokenizer, [self.encode(pairs[i], heads[i]) for i in rows],
                                          self.max_new_tokens, self.batch_size, opened=1, advance=advance, allowed_tokens=allowed)
            for i, gen in zip(rows, gens):
                texts[i] = gen
        for j, head, gen in zip(judgments, heads, texts):
            raw = head + gen
            end = balanced_end(raw)
            if end is None and self.constrained_topics is not None:
                from .constrained import close_summary

                raw = close_summary(raw)
                end = balanced_end(raw)
            j.raw_text = raw[:end] if end else raw
            obj, ok = parse_output(j.raw_text)
            j.parse_ok = ok
            reason = obj.get("reason") if obj else None
            j.reason = reason if isinstance(reason, dict) else None


def _has_tokenizer(folder: str) -> bool:
    from pathlib import Path

    return (Path(folder) / "tokenizer_config.json").is_file()


def _factory(name: str, needs_adapter: bool, constrained: bool = False):
    def check(arg, context):
        """Paths and configs, no weights loaded: run for every grader before any is built."""
        if needs_adapter and not arg:
            raise LoragError(f"grader {name} needs an adapter folder: --graders {name}:adapters/{name}")
        check_base_model(context.base_model)
        if arg:
            check_adapter(arg, context.base_model, f"{name}:{arg}")

    def make(arg, context):
        check(arg, context)
        return LMGrader(
            name if not arg else f"{name}:{arg}", base_model=context.base_model, adapter=arg,
            quant=context.quant, batch_size=context.batch_size, max_doc_tokens=context.max_doc_tokens,
            precision=getattr(context, "precision", "auto"),
            constrained_topics=label_topics(context.dataset) if constrained else None,
        )

    make.check = check
    return make


make_base = _factory("base", needs_adapter=False)
make_s1 = _factory("s1", needs_adapter=True)
make_s2 = _factory("s2", needs_adapter=True)
make_s2_json = _factory("s2-json", needs_adapter=True, constrained=True)



def label_topics(dataset) -> list[str]:
    """The readable topic names the references use (empty: any string)."""
    return sorted(set(dataset.topics.values())) if dataset is not None and dataset.topics else []
