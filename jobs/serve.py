"""Serve: a run's latest export over TF Serving's REST API (KServe's Python model server), until stopped."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, new_app, run, stage
from jobs._options import Seed, bounded
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("serve", help=__doc__)
@stage
def main(
    model: Annotated[ModelName, typer.Option(help=f"Which exported model: {help_text()}.")],
    data: DataDir = None,
    seed: Seed = DEFAULT_SEED,
    port: Annotated[int, bounded("port", help="HTTP port (TF Serving's REST port is 8501).")] = 8501,
) -> None:
    root = data_dir(data, writable=False)
    from shared.serving.server import serve
    from shared.volume.layout import Volume

    serve(vol=Volume(root), model=model.value, seed=seed, port=port)


if __name__ == "__main__":
    run(app)
