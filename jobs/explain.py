"""Explain: each image with a Grad-CAM heat map over it (where the model found its answer), and that answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import Seed
from jobs.predict import _plain, exit_if_failed
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("explain", help=__doc__)
@stage
def main(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    model: Annotated[ModelName, typer.Option(help=f"Which trained model: {help_text()}.")],
    data: DataDir = None,
    seed: Seed = DEFAULT_SEED,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the PNGs (default: reports/explained/<model>-seed-<S>/ on the volume).",
        show_default=False)] = None,
) -> None:
    root = data_dir(data, writable=out is None)
    keras_home_on_volume(root)
    from shared.reports.explain import ExplainConfig, explain

    results = explain(config=ExplainConfig(data_dir=root, model=model, paths=tuple(paths), seed=seed, out=out))
    for r in results:
        if r.error:
            print(f"cannot explain {_plain(r.path)}: {r.error}", file=sys.stderr)
        else:
            print(f"{_plain(r.path)}\t{r.label}\tp_dog={r.p_dog:.4f}\t{_plain(r.written)}")
    exit_if_failed(results, verb="explained")


if __name__ == "__main__":
    run(app)
