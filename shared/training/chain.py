"""One index of the Kubernetes Indexed Job: a model and the models that start from it, trained then scored.

The chains come from the catalog, so the Job's `completions` is len(chains()): each model that starts
from no other opens a chain, and a model that starts from another joins its chain (fine-tune needs
feature-extraction-augmented's checkpoint, so both run in one pod, one after the other).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.training.catalog import SPECS, ModelName, spec
from shared.training.runs import MAX_EPOCHS, TrainConfig
from shared.volume.errors import EXIT_BUG, CatsDogsError, RetryableError, UsageError
from shared.volume.fsutil import remove, write_json
from shared.volume.layout import Volume
from shared.volume.progress import say

EPOCHS_ENV = "CATSDOGS_EPOCHS_{}"  # per model, e.g. CATSDOGS_EPOCHS_SCRATCH; unset: the seed's epochs


def chains() -> list[list[ModelName]]:
    out = [[s.name] for s in SPECS.values() if s.starts_from is None]
    for s in SPECS.values():  # the catalog lists a model after the one it starts from
        if s.starts_from is not None:
            next(c for c in out if s.starts_from in c).append(s.name)
    return out


def epochs_from_env(environ: dict[str, str] | os._Environ = os.environ) -> dict[ModelName, int]:
    out = {}
    for name in ModelName:
        key = EPOCHS_ENV.format(name.value.upper().replace("-", "_"))
        if environ.get(key, "").strip():
            try:
                out[name] = int(environ[key])
            except ValueError:
                raise UsageError(f"{key}={environ[key]!r}: expected a whole number of epochs") from None
            if not 1 <= out[name] <= MAX_EPOCHS:  # the bound --epochs has
                raise UsageError(f"{key}={environ[key]}: expected 1 to {MAX_EPOCHS} epochs")
    return out


@dataclass(frozen=True)
class ChainConfig:
    template: TrainConfig  # every option but the model and its epochs
    index: int
    models: tuple[ModelName, ...] | None = None  # only these (and what they start from); None: all
    epochs: tuple[tuple[ModelName, int], ...] = ()  # per-model overrides
    wait_for_split_s: float = 0.0


def wait_for_split(vol: Volume, seconds: float) -> None:
    """Until the prepare step's split manifest is on the volume (it is written last), or give up retryably."""
    deadline = time.monotonic() + seconds
    if not vol.split_manifest.exists() and seconds > 0:
        say(f"waiting up to {seconds:.0f} s for the split at {vol.split_manifest} (the prepare Job writes it)")
    while not vol.split_manifest.exists():
        if time.monotonic() >= deadline:
            raise RetryableError(f"no split at {vol.subsets} after {seconds:.0f} s: has the prepare Job finished? "
                                 "(kubectl -n catsdogs logs job/catsdogs-prepare)")
        time.sleep(2)


def record_failure(vol: Volume, model: str, error: BaseException, exit_code: int) -> None:
    write_json(vol.failure_record(model), {"model": model, "error": str(error) or type(error).__name__,
                                           "exit_code": exit_code,
                                           "at": datetime.now(UTC).isoformat(timespec="seconds")})


def run_chain(*, config: ChainConfig) -> list[ModelName]:
    """Train and evaluate this index's models; a permanent failure is recorded for the summary, then raised."""
    from shared.data.split import load_manifest
    from shared.reports.evaluation import EvaluateConfig, evaluate, update_summary
    from shared.training.train import train_with_prerequisite

    all_chains = chains()
    if not 0 <= config.index < len(all_chains):
        raise UsageError(f"--index {config.index}: expected 0 to {len(all_chains) - 1} (one per chain)")
    wanted = [m for m in all_chains[config.index] if config.models is None or m in config.models]
    if not wanted:
        say(f"index {config.index} ({', '.join(m.value for m in all_chains[config.index])}): nothing asked of it")
        return []
    vol, epochs = Volume(config.template.data_dir), dict(config.epochs)
    wait_for_split(vol, config.wait_for_split_s)
    for model in wanted:
        base = spec(model).starts_from
        try:
            train_with_prerequisite(config=replace(config.template, model=model, epochs=epochs.get(model)),
                                    prerequisite_epochs=epochs.get(base) if base else None)
        except Exception as e:
            code = e.exit_code if isinstance(e, CatsDogsError) else EXIT_BUG
            if code not in (1, RetryableError.exit_code):  # a retry may still succeed: not a failure yet
                record_failure(vol, model.value, e, code)
                update_summary(vol=vol, split=load_manifest(vol))
            raise
        remove(vol.failure_record(model.value))
        evaluate(config=EvaluateConfig(data_dir=vol.root, model=model.value))
    return wanted
