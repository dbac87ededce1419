"""Train: one of the catalog's models on the split, resumable after a kill."""

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
)
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("train", help=__doc__)
@stage
def main(
    model: Annotated[ModelName, typer.Option(help=f"Which model of the catalog: {help_text()}.")],
    data: DataDir = None,
    epochs: Annotated[int | None, bounded(
        "epochs", help="Epochs (default: the seed's for the model).")] = None,
    batch_size: BatchSize = 32,
    image_size: ImageSize = None,
    learning_rate: Annotated[float | None, typer.Option(
        help="RMSprop learning rate (default: 1e-3, fine-tune 1e-5).")] = None,
    seed: Seed = DEFAULT_SEED,
    weights: Weights = "imagenet",
    deterministic: Annotated[bool, typer.Option(help="Deterministic ops: same seed, same history.")] = True,
    precision: PrecisionOption = Precision.float32,
    xla: Annotated[bool | None, typer.Option("--xla/--no-xla", help="XLA compilation (default: Keras decides).",
                                             show_default=False)] = None,
    cache: Annotated[bool, typer.Option(help="Keep decoded images in memory after the first epoch.")] = True,
    frozen_cache: Annotated[bool, typer.Option(
        envvar="CATSDOGS_FROZEN_CACHE",
        help="Validate by running a model's frozen first layers once and the rest every epoch (same numbers; "
             "--no-frozen-cache runs the whole network every epoch).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the model is trained.")] = False,
    with_prerequisite: Annotated[bool, typer.Option(
        "--with-prerequisite", help="For fine-tune: train feature-extraction-augmented first if missing.")] = False,
    prerequisite_epochs: Annotated[int | None, bounded(
        "epochs", help="Epochs of that prerequisite (default: its own, 50).")] = None,
    strategy: StrategyOption = Strategy.auto,
    require_gpu: RequireGpu = False,
    summary: Annotated[bool, typer.Option(
        "--summary", help="Print the model's summary (layers, output shapes, parameters) before training; it is "
                          "also written beside the model as summary.txt.")] = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.training.train import TrainConfig, train, train_with_prerequisite

    config = TrainConfig(data_dir=root, model=model, epochs=epochs, batch_size=batch_size, image_size=image_size,
                         learning_rate=learning_rate, seed=seed, weights=weights, deterministic=deterministic,
                         force=force, require_gpu=require_gpu, precision=precision.value, strategy=strategy.value,
                         xla=xla, cache=cache, frozen_cache=frozen_cache,
                         summary=summary)
    if with_prerequisite:
        train_with_prerequisite(config=config, prerequisite_epochs=prerequisite_epochs)
    else:
        train(config=config)


if __name__ == "__main__":
    run(app)
