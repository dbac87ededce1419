"""Split: the seed's small subset (per class: 1000 train, 500 validation, 1000 test)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, new_app, run, stage
from jobs._options import bounded
from shared.data.split import SplitConfig, split

app = new_app(__doc__)


@app.command("split", help=__doc__)
@stage
def main(
    data: DataDir = None,
    train: Annotated[int, bounded("subset_size", envvar="CATSDOGS_SPLIT_TRAIN",
                                        help="Training images per class (indices 0..N-1).")] = 1000,
    validation: Annotated[int, bounded("subset_size", envvar="CATSDOGS_SPLIT_VALIDATION",
                                        help="Validation images per class, after train.")] = 500,
    test: Annotated[int, bounded("subset_size", envvar="CATSDOGS_SPLIT_TEST",
                                        help="Test images per class, after validation.")] = 1000,
    skip_corrupt: Annotated[bool, typer.Option(
        "--skip-corrupt", help="Replace an image that does not decode with the next unused one.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a split made with other parameters.")] = False,
) -> None:
    split(config=SplitConfig(data_dir=data_dir(data), train=train, validation=validation, test=test,
                             skip_corrupt=skip_corrupt, force=force))


if __name__ == "__main__":
    run(app)
