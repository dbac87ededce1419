"""Chain: one index of the Kubernetes Indexed Job; trains a model and those that start from it, then scores them."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import (
    BatchSize,
    ImageSize,
    Precision,
    PrecisionOption,
    RequireGpu,
    Seed,
    Strategy,
    StrategyOption,
    Weights,
    bounded,
    parse_seeds,
)
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName, parse_models

app = new_app(__doc__)


@app.command("chain", help=__doc__)
@stage
def main(
    index: Annotated[int, bounded(
        "index", envvar="JOB_COMPLETION_INDEX", help="Which chain (Kubernetes sets JOB_COMPLETION_INDEX).")],
    data: DataDir = None,
    models: Annotated[str, typer.Option(
        envvar="CATSDOGS_MODELS", help="'all', or a comma-separated list: only those (and what they start from).")
    ] = "all",
    wait_for_split: Annotated[float, bounded(
        "wait_seconds", envvar="CATSDOGS_WAIT_FOR_SPLIT",
        help="Seconds to wait for the prepare step's split.")] = 0,
    batch_size: BatchSize = 32,
    image_size: ImageSize = None,
    seed: Seed = DEFAULT_SEED,
    seeds: Annotated[str | None, typer.Option(
        envvar="CATSDOGS_SEEDS", help="Seeds to cover, e.g. 1337,1,2: the Job has chains x seeds indices, seed-major "
        "(default: --seed alone).", show_default=False)] = None,
    job_completions: Annotated[int | None, bounded(
        "index", envvar="CATSDOGS_JOB_COMPLETIONS", help="The Job's completions, checked against chains x seeds.",
        show_default=False)] = None,
    weights: Weights = "imagenet",
    precision: PrecisionOption = Precision.float32,
    strategy: StrategyOption = Strategy.auto,
    require_gpu: RequireGpu = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.orchestration.chain import ChainConfig, epochs_from_env, run_chain
    from shared.training.train import TrainConfig

    chosen = parse_models(models)
    template = TrainConfig(data_dir=root, model=ModelName.scratch, batch_size=batch_size, image_size=image_size,
                           seed=seed, weights=weights, precision=precision.value, strategy=strategy.value,
                           require_gpu=require_gpu)
    covered = (seed,) if seeds is None or not seeds.strip() else parse_seeds(seeds)
    run_chain(config=ChainConfig(template=template, index=index, models=chosen, seeds=covered,
                                 job_completions=job_completions,
                                 epochs=tuple(epochs_from_env().items()), wait_for_split_s=wait_for_split))


if __name__ == "__main__":
    run(app)
