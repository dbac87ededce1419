"""Describe: a model's layers, output shapes and parameters (trainable or not), without training it."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import new_app, run, stage
from jobs._options import ImageSize
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("describe", help=__doc__)
@stage
def main(
    model: Annotated[ModelName, typer.Option(help=f"Which model of the catalog: {help_text()}.")],
    image_size: ImageSize = None,
) -> None:
    from shared.training.describe import describe
    from shared.training.models import IMAGE_SIZE

    text, _ = describe(model=model, image_size=image_size or IMAGE_SIZE)
    print(text, end="")


if __name__ == "__main__":
    run(app)
