"""One index of the Kubernetes Indexed Job: a chain of models for one seed, trained then scored.

The chains come from the catalog: each model that starts from no other opens a chain, and a model that
starts from another joins its chain (fine-tune needs feature-extraction-augmented's checkpoint of the same
seed, so both run in one pod, one after the other). With several seeds (CATSDOGS_SEEDS) the Job covers
chains x seeds: `completions` is `completions(seeds)`, and `assignment` maps an index to its (chain, seed),
seed-major, so the first indices to run cover every chain of the first seed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.core.console import say
from shared.core.errors import EXIT_BUG, CatsDogsError, RetryableError, UsageError
from shared.core.numbers import parse_number
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import SPECS, ModelName, spec
from shared.training.runs import MAX_EPOCHS, TrainConfig
from shared.volume.fsutil import remove, write_json
from shared.volume.layout import Volume


def chains() -> list[list[ModelName]]:
    out = [[s.name] for s in SPECS.values() if s.starts_from is None]
    for s in SPECS.values():  # the catalog lists a model after the one it starts from
        if s.starts_from is not None:
            next(c for c in out if s.starts_from in c).append(s.name)
    return out


def completions(seeds: tuple[int, ...]) -> int:
    return len(chains()) * len(seeds)


def assignment(index: int, seeds: tuple[int, ...]) -> tuple[int, int]:
    """(the chain's position in chains(), the seed) of one index of the Indexed Job."""
    if not 0 <= index < completions(seeds):
        raise UsageError(f"--index {index}: expected 0 to {completions(seeds) - 1} ({len(chains())} chains x "
                         f"{len(seeds)} seeds)")
    return index % len(chains()), seeds[index // len(chains())]


def epochs_from_env(environ: dict[str, str] | os._Environ = os.environ) -> dict[ModelName, int]:
    out = {}
    """Per-model epochs (ModelSpec.epochs_variable, e.g. CATSDOGS_EPOCHS_SCRATCH); unset: the seed's."""
    for name, s in SPECS.items():
        key = s.epochs_variable
        if environ.get(key, "").strip():  # the bound --epochs has
            out[name] = parse_number(environ[key], name=key, low=1, high=MAX_EPOCHS)
    return out


@dataclass(frozen=True)
class ChainConfig:
    template: TrainConfig  # every option but the model, its epochs and the seed
    index: int
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    job_completions: int | None = None  # what the Job was rendered with, to check against the seeds
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


def record_failure(vol: Volume, model: str, seed: int, error: BaseException, exit_code: int) -> None:
    write_json(vol.failure_record(model, seed), {"model": model, "seed": seed, "exit_code": exit_code,
                                                 "error": str(error) or type(error).__name__,
                                                 "at": datetime.now(UTC).isoformat(timespec="seconds")})


def run_chain(*, config: ChainConfig) -> list[ModelName]:
    """Train and evaluate this index's models; a permanent failure is recorded for the summary, then raised."""
    from shared.data.split import load_manifest
    from shared.orchestration.reporting import EvaluateConfig, evaluate, update_summary
    from shared.training.train import train_with_prerequisite

    all_chains = chains()
    if config.job_completions is not None and config.job_completions != completions(config.seeds):
        raise UsageError(f"the Job has {config.job_completions} completions, but {len(all_chains)} chains x "
                         f"{len(config.seeds)} seeds (CATSDOGS_SEEDS) need {completions(config.seeds)}: render it "
                         "with `make k8s-render`, which sets both")
    position, seed = assignment(config.index, config.seeds)
    chain = all_chains[position]
    wanted = [m for m in chain if config.models is None or m in config.models]
    if not wanted:
        say(f"index {config.index} ({', '.join(m.value for m in chain)}, seed {seed}): nothing asked of it")
        return []
    vol, epochs = Volume(config.template.data_dir), dict(config.epochs)
    wait_for_split(vol, config.wait_for_split_s)
    for model in wanted:
        base = spec(model).starts_from
        try:
            train_with_prerequisite(config=replace(config.template, model=model, epochs=epochs.get(model), seed=seed),
                                    prerequisite_epochs=epochs.get(base) if base else None)
        except Exception as e:
            code = e.exit_code if isinstance(e, CatsDogsError) else EXIT_BUG
            if code not in (1, RetryableError.exit_code):  # a retry may still succeed: not a failure yet
                record_failure(vol, model.value, seed, e, code)
                update_summary(vol=vol, split=load_manifest(vol))
            raise
        remove(vol.failure_record(model.value, seed))
        evaluate(config=EvaluateConfig(data_dir=vol.root, model=model.value, seed=seed))
    return wanted


if __name__ == "__main__":  # for the Makefile: how many chains the Job covers per seed
    import sys

    if sys.argv[1:] != ["count"]:
        sys.exit("usage: python -m shared.orchestration.chain count")
    print(len(chains()))
