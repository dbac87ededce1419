"""The evaluate stage: score the asked-for runs, then rewrite the summary and the page from every run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.core.console import say
from shared.core.errors import CatsDogsError, PermanentError
from shared.core.hints import train_hint
from shared.core.seeds import DEFAULT_SEED
from shared.data.split import check_subset, load_manifest
from shared.reports.evaluation import evaluate_model
from shared.reports.page import write_page
from shared.reports.summary import model_row, write_summary
from shared.training.catalog import SPECS, spec
from shared.training.runs import finished_seeds, trained_run
from shared.volume.layout import Volume, run_key

ALL = "all"


@dataclass(frozen=True)
class EvaluateConfig:
    data_dir: Path
    model: str = ALL
    batch_size: int = 32
    force: bool = False
    seed: int | None = None  # None: every trained seed


def update_summary(*, vol: Volume, split: dict, scored: dict | None = None, failed: dict | None = None) -> list[dict]:
    """Rewrite reports/summary.md and reports/index.html from every run's current state, one writer at a time.

    Rows are read under the lock, after this process's reports are written: whichever evaluation writes
    last has seen every report written before it, so no row is lost when several run at once.
    `scored` and `failed` are keyed by (model, seed).
    """
    scored, failed = scored or {}, failed or {}
    with vol.lock("summary", what="writing the summary", wait_s=None):
        rows = [model_row(vol, s, split, scored, failed) for s in SPECS.values()]
        write_summary(vol=vol, rows=rows)
        write_page(vol=vol, rows=rows)
    return rows


def score_run(*, vol: Volume, model: str, seed: int, split: dict, batch_size: int, force: bool = False) -> dict:
    """One run's report, made or reused: one evaluator per run, and its model not replaced meanwhile."""
    key = run_key(model, seed)
    with vol.lock(f"evaluate-{key}", what=f"evaluating {key}", wait_s=None), \
            vol.reading(f"model-{key}", what=f"evaluating {key}"):
        return evaluate_model(vol=vol, model=model, split=split, batch_size=batch_size, force=force, seed=seed)


def evaluate(*, config: EvaluateConfig) -> list[dict]:
    """Score the asked-for model or every trained one; the summary always covers every model of the catalog."""
    vol = Volume(config.data_dir)
    with vol.reading("subsets", what="an evaluation"):  # the test images stay those the manifest lists
        return _evaluate(config, vol)


def _evaluate(config: EvaluateConfig, vol: Volume) -> list[dict]:
    split = load_manifest(vol)
    check_subset(vol, split, "test")
    wanted = list(SPECS.values()) if config.model == ALL else [spec(config.model)]
    if config.model == ALL:
        runs = [(s.name.value, seed) for s in wanted for seed in finished_seeds(vol, s.name.value)
                if config.seed in (None, seed)]
        if config.seed is not None and not runs:  # asked for a run that does not exist, as with --model
            trained = sorted({seed for s in wanted for seed in finished_seeds(vol, s.name.value)})
            raise PermanentError(f"no model is trained with seed {config.seed}" + (
                f" (trained seeds: {', '.join(map(str, trained))})" if trained else "") + ": train one first: "
                f"{train_hint(wanted[0].name.value, seed=config.seed)}")
    else:
        seeds = finished_seeds(vol, config.model) if config.seed is None else [config.seed]
        runs = [(config.model, seed) for seed in seeds or [DEFAULT_SEED]]
        for name, seed in runs:
            trained_run(vol, name, seed)  # not trained: say so before touching anything
    scored, failed = {}, {}
    for name, seed in runs:
        key = run_key(name, seed)
        try:
            scored[name, seed] = score_run(vol=vol, model=name, seed=seed, split=split,
                                           batch_size=config.batch_size, force=config.force)
        except CatsDogsError as e:
            failed[name, seed] = e
            say(f"warning: {key} not scored: {e}")
    rows = update_summary(vol=vol, split=split, scored=scored, failed=failed)
    if config.model != ALL and failed:
        raise next(iter(failed.values()))
    return [r for r in rows if r["model"] in {s.name.value for s in wanted}]
