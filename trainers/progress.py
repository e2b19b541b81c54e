"""Training with a Rich progress bar and a printed summary (used by `lorag train` and `lorag demo`)."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag_harness.progress import progress as heartbeat_progress

err = Console(stderr=True)


def train_with_progress(cfg, dataset) -> dict:
    """Train with a Rich progress bar (loss and validation AUC); print the summary and, for a weak run,
    a warning with its reasons and likely causes. Returns the manifest."""
    from .train import train

    from lorag_harness.backends.precision import describe

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("val AUC {task.fields[auc]}"),
               TextColumn("{task.fields[phase]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with heartbeat_progress(*columns, console=err) as progress:
        bar = progress.add_task(f"train {cfg.stage}", total=None, loss=float("nan"), auc="–", unit="step",
                                phase="loading the model")

        def update(step, total, loss, auc):
            shown = "–" if auc is None else f"{auc:.3f}"
            progress.update(bar, completed=step, total=total, loss=loss, auc=shown,
                            heartbeat=f"loss {loss:.3f}, val AUC {shown}")

        manifest = train(cfg, dataset, update, log=lambda line: progress.console.print(line, soft_wrap=True),
                         status=lambda text: progress.update(bar, phase=text))
    m, h = manifest["metrics"], manifest["hyperparameters"]
    if cfg.time_budget:
        spent = (manifest.get("budget") or {}).get("budget_s") or cfg.time_budget
        err.print(f"{cfg.stage}: time budget {spent:.0f} s → {h['steps']} steps chosen "
                  f"(the epochs limit allows {h['steps_cap']}), {m['steps_run']} run")
    err.print(f"{cfg.stage}: {m['steps_run']} steps ({m['stopped']}), loss {m['first_loss']:.3f} → "
              f"{m['final_loss']:.3f} in {m['seconds']:.0f} s ({m['steps_per_s']:.3f} steps/s, "
              f"{m['examples_per_s']:.2f} examples/s) → {cfg.out}")
    err.print(f"{cfg.stage}: on {describe(manifest['machine'])}", soft_wrap=True)
    if v := manifest.get("validation"):
        lo, hi = v["best_auc_interval"]
        err.print(f"{cfg.stage}: validation ROC-AUC {v['base_auc']:.3f} (base) → best {v['best_auc']:.3f} "
                  f"({lo:.3f}–{hi:.3f}) at step {v['best_step']} on {v['pairs']} held-out training pairs "
                  f"({v['documents']} documents); that state is the one saved")
    if c := manifest.get("calibration"):
        err.print(f"{cfg.stage}: P(true) threshold {c['threshold']:.3f} fitted on {c['pairs']} {c['on']} pairs "
                  f"(AUC {c['auc']:.3f}, balanced accuracy {c['balanced_accuracy']:.3f})")
    if manifest.get("weak"):
        print_weak(cfg.out, manifest)
    return manifest


def print_weak(out, manifest: dict) -> None:
    from .diagnostics import WEAK_CAUSES

    err.print(f"[bold red]WARNING: {out} is a weak adapter: this run did not learn relevance.[/]")
    for reason in manifest.get("weak_reasons", []):
        err.print(f"  - {reason}")
    err.print("  Likely causes: " + "; ".join(WEAK_CAUSES) + ".")
    err.print('  The adapter is saved with "weak": true in its manifest; graders built from it warn.')
