"""Train: one of the seed's five models on the split, resumable after a kill."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, stage
from shared.catalog import ModelName, help_text

app = new_app(__doc__)


class Precision(str, Enum):
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


@app.command("train", help=__doc__)
@stage
def main(
    model: Annotated[ModelName, typer.Option(help=f"Which of the five models: {help_text()}.")],
    data: DataDir = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs [default: the seed's for the model].")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size.")] = 32,
    image_size: Annotated[int | None, typer.Option(min=8, help="Square image side [default: 180].")] = None,
    learning_rate: Annotated[float | None, typer.Option(
        help="RMSprop learning rate [default: 1e-3, fine-tune 1e-5].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random number generator.")] = 1337,
    weights: Annotated[str, typer.Option(help="VGG16 weights: imagenet, none, or a weights file.")] = "imagenet",
    deterministic: Annotated[bool, typer.Option(help="Deterministic ops: same seed, same history.")] = True,
    precision: Annotated[Precision, typer.Option(
        help="float32 (the seed's), or mixed precision on a GPU.")] = Precision.float32,
    xla: Annotated[bool | None, typer.Option("--xla/--no-xla", help="XLA compilation [default: Keras decides].",
                                             show_default=False)] = None,
    cache: Annotated[bool, typer.Option(help="Keep decoded images in memory after the first epoch.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the model is trained.")] = False,
    with_prerequisite: Annotated[bool, typer.Option(
        "--with-prerequisite", help="For fine-tune: train feature-extraction-augmented first if missing.")] = False,
    prerequisite_epochs: Annotated[int | None, typer.Option(
        min=1, help="Epochs of that prerequisite [default: its own, 50].")] = None,
    require_gpu: Annotated[bool, typer.Option(
        "--require-gpu", envvar="CATSDOGS_REQUIRE_GPU",
        help="Exit 3 at once if TensorFlow sees no GPU, instead of training on the CPU.")] = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.training import TrainConfig, train, train_with_prerequisite

    config = TrainConfig(data_dir=root, model=model, epochs=epochs, batch_size=batch_size, image_size=image_size,
                         learning_rate=learning_rate, seed=seed, weights=weights, deterministic=deterministic,
                         force=force, require_gpu=require_gpu, precision=precision.value, xla=xla, cache=cache)
    if with_prerequisite:
        train_with_prerequisite(config=config, prerequisite_epochs=prerequisite_epochs)
    else:
        train(config=config)


if __name__ == "__main__":
    app()
