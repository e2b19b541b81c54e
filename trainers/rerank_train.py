"""``lorag train reranker``: a sentence-transformers cross-encoder trained with ``CrossEncoderTrainer``.

Losses: ``bce`` (BinaryCrossEntropyLoss, positives weighted by the class ratio) over the labelled
training pairs, or a listwise loss (``lambda``: LambdaLoss, ``listnet``: ListNetLoss) over one
positive and hard negatives mined with the first-stage embedder from the training documents, or
with ``--teacher SPEC`` ``margin-mse`` (MarginMSELoss): the student learns a teacher grader's score
margins between each query's positive and negative (``trainers/teacher.py``).
The folder gets the model, and a manifest.json with the base model, data hash, hyper-parameters,
metrics and the relevance threshold calibrated on training pairs."""
from __future__ import annotations

import random
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from lorag_harness.errors import LoragError
from lorag_harness.backends.lm import quiet_transformers
from lorag_harness.api.types import Pair, pairs_hash

from .common import (LOSSES, calibration, calibration_sample, check_positive, check_schedule, check_training_pairs,
                     config_key, err, judged_first, loss_callback, run_metrics, trainer_arguments, triples,
                     write_manifest)
from .outputs import claim
from .teacher import teacher_margins

DISTIL = "margin-mse"  # the loss of --teacher: MarginMSE on the teacher's (positive - negative) margins


@dataclass
class RerankConfig:
    out: str
    base_model: str | None = None  # None: the packaged all-MiniLM-L6-v2 encoder with a new 1-logit head
    loss: str = "bce"
    pos_weight: float | None = None  # bce; None: negatives / positives on the training pairs
    negatives: int = 4  # listwise: hard negatives per positive
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.1
    max_length: int = 128
    lora: bool = False
    r: int = 16
    alpha: int = 32
    precision: str = "auto"  # auto (bf16 where measured faster: lorag_harness/backends/precision.py) | fp32 | bf16
    calibration_pairs: int = 512
    teacher: str | None = None  # a grader spec: loss margin-mse on its score margins instead of the labels
    max_rows: int | None = None  # training rows (bce: pairs; listwise, margin-mse: queries' rows): judged first, then a seeded sample
    seed: int = 13
    force: bool = False  # replace what --out holds (another model or run); not part of the key

    def check(self) -> None:
        from lorag_harness.backends.precision import check as check_precision

        check_precision(self.precision)
        if self.teacher is not None and self.loss != DISTIL:
            raise LoragError(f"--teacher distils the teacher's score margins (loss {DISTIL}): drop --loss {self.loss}")
        if self.loss == DISTIL and self.teacher is None:
            raise LoragError(f"--loss {DISTIL} learns a teacher's score margins: pass --teacher SPEC")
        if self.loss not in LOSSES + (DISTIL,):
            raise LoragError(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.max_rows is not None and self.max_rows < 2:
            raise LoragError(f"--max-rows must be >= 2, not {self.max_rows}")
        check_positive(self, ("batch_size", "max_length", "negatives", "r", "alpha"))
        check_schedule(self)
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise LoragError(f"--pos-weight must be > 0, not {self.pos_weight}")
        if self.calibration_pairs < 0:
            raise LoragError("--calibration-pairs must be >= 0")


# ---- training -----------------------------------------------------------------------------------

def mine_hard_negatives(pairs: list[Pair], k: int, embedder: str | None = None, seed: int = 13) -> list[dict]:
    """One row per positive training pair: the query, [positive, k hardest negatives], [1, 0, ...].

    Negatives are the training documents the first-stage embedder ranks highest for the query,
    skipping documents known to be relevant to it (same topic, or labelled relevant for the same
    query text): unlike ``sentence_transformers.util.mine_hard_negatives``, which only knows the
    paired positive, this never turns another relevant document into a negative."""
    from lorag_harness.backends.embedder import embed

    positives = [p for p in pairs if p.label]
    docs = list(dict.fromkeys(p.document for p in pairs))
    topic_of = {p.document: p.document_topic for p in pairs if p.document_topic}
    relevant, not_relevant = {}, {}
    for p in pairs:
        (relevant if p.label else not_relevant).setdefault(p.query, set()).add(p.document)
    queries = list(dict.fromkeys(p.query for p in positives))
    sims = embed(queries, embedder) @ embed(docs, embedder).T
    row_of = {q: i for i, q in enumerate(queries)}
    rng = random.Random(seed)
    rows = []
    for p in positives:
        order = np.argsort(-sims[row_of[p.query]])
        negs = []
        for j in order:
            d = docs[j]
            if d in relevant[p.query] or (p.query_topic and topic_of.get(d) == p.query_topic):
                continue
            if not p.query_topic and d not in not_relevant.get(p.query, ()):  # no topics: only labelled negatives
                continue
            negs.append(d)
            if len(negs) == k:
                break
        if negs:
            rng.shuffle(negs)
            rows.append({"query": p.query, "docs": [p.document] + negs, "labels": [1.0] + [0.0] * len(negs)})
    return rows


def capped_pairs(pairs: list[Pair], max_rows: int | None, seed: int) -> list[Pair]:
    """At most ``max_rows`` pairs: every judged one, then a seeded sample of the others (order kept)."""
    if max_rows is None or len(pairs) <= max_rows:
        return pairs
    judged = [i for i, p in enumerate(pairs) if p.provenance.startswith("judged")]
    other = [i for i, p in enumerate(pairs) if not p.provenance.startswith("judged")]
    keep = set().union(*judged_first(judged, other, max_rows, random.Random(seed)))
    return [p for i, p in enumerate(pairs) if i in keep]


def build_model(cfg: RerankConfig):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from lorag_harness.backends.embedder import resolve_embedder

    base = cfg.base_model or resolve_embedder(None)
    try:
        with warnings.catch_warnings(), quiet_transformers():
            warnings.simplefilter("ignore")
            model = CrossEncoder(base, num_labels=1, max_length=cfg.max_length, device="cpu",
                                 activation_fn=torch.nn.Identity())
    except Exception as e:  # noqa: BLE001 - a bad --from: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoragError(f"--from {cfg.base_model}: cannot load it as a cross-encoder ({first})") from None
    if model.num_labels != 1:
        raise LoragError(f"--from {cfg.base_model}: has {model.num_labels} output labels; the reranker trains one logit")
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model[0].model = get_peft_model(model[0].model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r,
                                                                   lora_alpha=cfg.alpha, lora_dropout=0.0))
    return model


def train_reranker(cfg: RerankConfig, dataset, progress=None, embedder: str | None = None) -> dict:
    """Train, calibrate on training pairs, save model and manifest to ``cfg.out``; returns the manifest."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss, ListNetLoss, MarginMSELoss
    from transformers import PrinterCallback

    from lorag_harness.backends import precision

    cfg.check()
    pairs = list(dataset.train_pairs)
    check_training_pairs(pairs, "lorag train reranker")
    out = claim(cfg.out, "cross-encoder", config_key(cfg, pairs), cfg.force)
    used = precision.resolve(cfg.precision, "cpu")
    teacher = None
    if cfg.loss == DISTIL:  # the teacher grades before the student loads: a grader without scores stops here
        rows = triples(pairs, True, cfg.seed, cfg.max_rows)
        if not rows:
            raise LoragError("--teacher needs queries with a relevant and a negative training pair (got none)")
        start, cpu = time.perf_counter(), time.process_time()
        margins, scale = teacher_margins(cfg.teacher, rows, dataset, logits=True)
        teacher = {"spec": cfg.teacher, "scale": scale, "rows": len(rows), "seconds": round(time.perf_counter() - start, 1),
                   "cpu_seconds": round(time.process_time() - cpu, 1),
                   "mean_margin": round(float(np.mean(margins)), 4), "positive_margins": round(float(np.mean(np.asarray(margins) > 0)), 4)}
        err.print(f"teacher {cfg.teacher}: {len(rows)} rows graded in {teacher['seconds']:.0f} s, margins on the {scale} scale "
                  f"(mean {teacher['mean_margin']:+.2f}, {teacher['positive_margins']:.0%} positive)", soft_wrap=True)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    n_pos = sum(p.label for p in pairs)
    pos_weight = cfg.pos_weight or (len(pairs) - n_pos) / n_pos
    if cfg.loss == DISTIL:
        data = HFDataset.from_list([{**r, "label": float(m)} for r, m in zip(rows, margins)])
        loss = MarginMSELoss(model)
    elif cfg.loss == "bce":
        kept = capped_pairs(pairs, cfg.max_rows, cfg.seed)
        data = HFDataset.from_dict({"query": [p.query for p in kept], "doc": [p.document for p in kept],
                                    "label": [float(p.label) for p in kept]})
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(pos_weight))
    else:
        rows = mine_hard_negatives(pairs, cfg.negatives, embedder, cfg.seed)
        if not rows:
            raise LoragError("no hard negatives found in the training documents for a listwise loss: use --loss bce")
        if cfg.max_rows is not None and len(rows) > cfg.max_rows:
            rows = random.Random(cfg.seed).sample(rows, cfg.max_rows)
        data = HFDataset.from_list(rows)
        loss = (LambdaLoss if cfg.loss == "lambda" else ListNetLoss)(model)
    steps = cfg.steps or max(1, int(np.ceil(cfg.epochs * len(data) / cfg.batch_size)))

    report, log = loss_callback(steps, progress)

    with tempfile.TemporaryDirectory(prefix="lorag-reranker-") as tmp:
        args = CrossEncoderTrainingArguments(
            **trainer_arguments(cfg, steps, tmp), bf16=used == "bf16",
            dataloader_drop_last=False)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[report])
        trainer.remove_callback(PrinterCallback)  # progress goes to the Rich bar
        start, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if cfg.lora:
        model[0].model = model[0].model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # never new weights under the old manifest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(out))
    # threshold and probe from the saved model as the grader loads it: the trainer's bf16 autocast
    # stays wrapped around the in-memory model's forward
    from lorag_harness.graders.cross_encoder import CrossEncoderGrader, probe_records

    saved = CrossEncoderGrader.load(str(out))
    sample = calibration_sample(pairs, max(cfg.calibration_pairs, 4), cfg.seed)
    probs = CrossEncoderGrader.predict(saved, sample)
    cal = calibration([p.label for p in sample], probs) if cfg.calibration_pairs and len({p.label for p in sample}) == 2 else None
    manifest = {
        "kind": "cross-encoder", "out": str(out), "key": config_key(cfg, pairs),
        "base_model": cfg.base_model or "all-minilm-l6-v2 (packaged encoder, new 1-logit head)",
        "data_hash": pairs_hash(pairs), "dataset": dataset.name,
        "hyper": {**{k: v for k, v in asdict(cfg).items() if k not in ("out", "force")}, "pos_weight": pos_weight if cfg.loss == "bce" else None,
                  "precision_used": used},
        "machine": precision.machine(used),
        "metrics": run_metrics(steps, len(data), pairs, log["losses"], seconds, cpu_seconds=cpu_seconds),
        "teacher": teacher,
        "calibration": cal,
        "probe": probe_records(sample[:4], probs[:4]),  # the grader checks that the saved model reproduces these
    }
    write_manifest(out, manifest)
    return manifest
