"""Fetch: the Dogs vs Cats images from Kaggle, a local archive or folder, or the generated stand-in."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, new_app, run, stage
from jobs._options import bounded
from shared.data.fetch import FetchConfig, fetch

app = new_app(__doc__)


@app.command("fetch", help=__doc__)
@stage
def main(
    data: DataDir = None,
    source: Annotated[str, typer.Option(
        envvar="CATSDOGS_SOURCE",
        help="'kaggle' (competition dogs-vs-cats), 'synthetic' (generated, no network), or the path of a "
             "dogs-vs-cats.zip, a train.zip or a folder of cat.N.jpg/dog.N.jpg.")] = "kaggle",
    per_class: Annotated[int, bounded(
        "per_class", envvar="CATSDOGS_PER_CLASS",
        help="Images per class for --source synthetic (at most Kaggle's 12,500).")] = 2500,
    seed: Annotated[int, bounded("seed", help="Seed of the generated images.")] = 0,
    retries: Annotated[int, bounded("retries", help="Retries of transient download failures.")] = 4,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if the volume has the data.")] = False,
) -> None:
    config = FetchConfig(data_dir=data_dir(data), source=source, per_class=per_class, seed=seed,
                         retries=retries, force=force)
    fetch(config=config)


if __name__ == "__main__":
    run(app)
