"""The learning curve: the chapter's models trained on fewer images, scored on the same test subset.

Every (size, seed, chain) is one unit of work, numbered size-major, then seed, then chain (the chapter's
chains, shared/orchestration/chain.py): `make learning-curve` runs them all in one process, a Kubernetes
Indexed Job one per index. Each unit trains on its size's volume (shared/data/subsample.py) as `train`
would, so a finished run is a no-op and a killed one resumes; then it scores its runs and rewrites
reports/learning-curve.{json,png} and the page under the summary lock, so the last unit to finish draws
the whole curve.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.core.console import say
from shared.core.errors import UsageError
from shared.core.numbers import parse_number_list
from shared.core.seeds import DEFAULT_SEED
from shared.data.split import load_manifest
from shared.data.subsample import check_size, subsample
from shared.orchestration.chain import chains
from shared.orchestration.reporting import score_run, update_summary
from shared.reports.learning_curve import prediction_text, write_learning_curve
from shared.training.catalog import ModelName, spec
from shared.training.runs import TrainConfig
from shared.volume.layout import Volume

DEFAULT_SIZES = (250, 500, 1000, 2000)  # up to the book's 2,000 training images
# The chapter's lesson in three lines: from scratch, with augmentation, on pretrained features.
DEFAULT_MODELS = (ModelName.scratch, ModelName.scratch_augmented, ModelName.feature_extraction)


def defaults_text() -> tuple[str, str]:
    """(sizes, models) as the CLI, the Makefile and the ConfigMap write them."""
    return " ".join(map(str, DEFAULT_SIZES)), " ".join(m.value for m in DEFAULT_MODELS)

SIZE_BOUNDS = (2, 50_000)  # Kaggle's 25,000 images of a class at most, two classes


def parse_sizes(text: str, *, source: str = "--sizes") -> tuple[int, ...]:
    """"250 500 1000" or "250,500,1000": distinct training-set sizes (images, both classes together)."""
    return tuple(sorted(parse_number_list(text, name=source, what="training-set size", low=SIZE_BOUNDS[0],
                                          high=SIZE_BOUNDS[1], example="250,500,1000,2000")))


@dataclass(frozen=True)
class LearningConfig:
    template: TrainConfig  # every training option but the model, its epochs and the seed; data_dir: the volume
    sizes: tuple[int, ...] = DEFAULT_SIZES
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    models: tuple[ModelName, ...] | None = None  # only these (and what they start from); None: all
    epochs: tuple[tuple[ModelName, int], ...] = ()  # per-model overrides
    index: int | None = None  # one unit of the Indexed Job; None: every unit, here, in order
    job_completions: int | None = None  # what the Job was rendered with, checked against the units


def units(config: LearningConfig) -> list[tuple[int, int, list[ModelName]]]:
    """(size, seed, the chain's models that were asked for) of every index, in index order."""
    out = []
    for size in config.sizes:
        for seed in config.seeds:
            for chain in chains():
                out.append((size, seed, [m for m in chain if config.models is None or m in config.models]))
    return out


def learning_curve(*, config: LearningConfig) -> dict | None:
    """Train and score the asked-for units, then draw the curve from every run scored so far."""
    todo = units(config)
    if config.job_completions is not None and config.job_completions != len(todo):
        raise UsageError(f"the Job has {config.job_completions} completions, but {len(config.sizes)} sizes x "
                         f"{len(config.seeds)} seeds x {len(chains())} chains need {len(todo)}: render it with "
                         "`make k8s-render`, which sets both")
    if config.index is not None:
        if not 0 <= config.index < len(todo):
            raise UsageError(f"--index {config.index}: expected 0 to {len(todo) - 1} ({len(config.sizes)} sizes x "
                             f"{len(config.seeds)} seeds x {len(chains())} chains)")
        todo = [todo[config.index]]
    vol = Volume(config.template.data_dir)
    split = load_manifest(vol)
    for size in {size for size, _, wanted in todo if wanted}:
        check_size(size, split)  # every size, before the first trains
    epochs = dict(config.epochs)
    from shared.training.train import train_with_prerequisite

    for size, seed, wanted in todo:
        if not wanted:
            continue
        sub = subsample(vol=vol, train_size=size)
        for model in wanted:
            base = spec(model).starts_from
            say(f"learning curve: {model.value}, {size} training images, seed {seed}")
            train_with_prerequisite(config=replace(config.template, data_dir=sub.root, model=model, seed=seed,
                                                   epochs=epochs.get(model)),
                                    prerequisite_epochs=epochs.get(base) if base else None)
            score_run(vol=sub, model=model.value, seed=seed, split=load_manifest(sub),
                      batch_size=config.template.batch_size)
    with vol.lock("summary", what="writing the learning curve", wait_s=None):
        result = write_learning_curve(vol=vol)
    update_summary(vol=vol, split=split)  # the page shows the curve
    for line in (result or {}).get("predictions", []):
        say(line)
    if result:
        say(f"learning curve: {vol.reports / 'learning-curve.png'} (and on the page, {vol.reports / 'index.html'})")
    return result


__all__ = ["LearningConfig", "learning_curve", "parse_sizes", "prediction_text", "units"]


if __name__ == "__main__":  # for the Makefile: python -m shared.orchestration.learning sizes|models
    import sys

    print(defaults_text()[["sizes", "models"].index(sys.argv[1])])
