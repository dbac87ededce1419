"""Learning curve: the chapter's models trained on fewer images (same validation and test subsets), then the
curve of test accuracy against training images, fitted and extrapolated to the book's accuracy."""

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
    Strategy,
    StrategyOption,
    Weights,
    bounded,
)
from shared.core.seeds import DEFAULT_SEED, parse_seeds
from shared.orchestration.learning import defaults_text
from shared.training.catalog import ModelName, parse_models

app = new_app(__doc__)


@app.command("learning-curve", help=__doc__)
@stage
def main(
    data: DataDir = None,
    sizes: Annotated[str, typer.Option(
        envvar="CATSDOGS_LEARNING_SIZES", help="Training-set sizes (images, both classes).")] = defaults_text()[0],
    models: Annotated[str, typer.Option(
        envvar="CATSDOGS_LEARNING_MODELS", help="'all', or models separated by spaces or commas (and what they "
        "start from).")] = defaults_text()[1],
    seeds: Annotated[str, typer.Option(envvar="CATSDOGS_SEEDS", help="Seeds, e.g. '1 2'.")] = str(DEFAULT_SEED),
    index: Annotated[int | None, bounded(
        "index", envvar="JOB_COMPLETION_INDEX", help="One (size, seed, chain) of the Kubernetes Indexed Job "
        "(default: all of them, here).", show_default=False)] = None,
    job_completions: Annotated[int | None, bounded(
        "index", envvar="CATSDOGS_JOB_COMPLETIONS", help="The Job's completions, checked against sizes x seeds x "
        "chains.", show_default=False)] = None,
    epochs: Annotated[int | None, bounded(
        "epochs", envvar="CATSDOGS_LEARNING_EPOCHS", help="Epochs of every model (default: each model's own, or "
        "CATSDOGS_EPOCHS_<MODEL>).", show_default=False)] = None,
    batch_size: BatchSize = 32,
    image_size: ImageSize = None,
    weights: Weights = "imagenet",
    precision: PrecisionOption = Precision.float32,
    strategy: StrategyOption = Strategy.auto,
    require_gpu: RequireGpu = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.orchestration.chain import epochs_from_env
    from shared.orchestration.learning import LearningConfig, learning_curve, parse_sizes
    from shared.training.catalog import SPECS
    from shared.training.train import TrainConfig

    template = TrainConfig(data_dir=root, model=ModelName.scratch, batch_size=batch_size, image_size=image_size,
                           weights=weights, precision=precision.value, strategy=strategy.value,
                           require_gpu=require_gpu)
    per_model = {m: epochs for m in SPECS} if epochs is not None else epochs_from_env()
    learning_curve(config=LearningConfig(template=template, sizes=parse_sizes(sizes), seeds=parse_seeds(seeds),
                                         models=parse_models(models), epochs=tuple(per_model.items()), index=index,
                                         job_completions=job_completions))


if __name__ == "__main__":
    run(app)
