"""Predict: classify image files or folders as cat or dog with a trained model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import BatchSize, Seed
from shared.core.errors import EXIT_PERMANENT
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName

app = new_app(__doc__)


@app.command("predict", help=__doc__)
@stage
def main(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    model: Annotated[ModelName | None, typer.Option(
        help="Which trained model (default: fine-tune if trained, else the one with the lowest validation "
             "loss; it says which).", show_default=False)] = None,
    data: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    batch_size: BatchSize = 32,
    seed: Seed = DEFAULT_SEED,
) -> None:
    root = data_dir(data, writable=False)
    keras_home_on_volume(root)
    from shared.reports.predict import PredictConfig, predict

    results = predict(config=PredictConfig(data_dir=root, model=model, paths=tuple(paths), batch_size=batch_size,
                                           seed=seed))
    for r in results:
        if as_json:
            print(json.dumps({"path": str(r.path), "label": r.label, "probability": r.probability,
                              "p_dog": r.p_dog, "error": r.error}))
        elif r.error:
            print(f"cannot classify {_plain(r.path)}: {r.error}", file=sys.stderr)
        else:
            print(f"{_plain(r.path)}\t{r.label}\t{r.probability:.4f}")
    exit_if_failed(results, verb="classified")


def exit_if_failed(results: list, *, verb: str) -> None:
    """Exit 3 with one line when any file failed (each was named on stderr already)."""
    failed = sum(1 for r in results if r.error)
    if failed:
        print(f"error: {failed} of {len(results)} files could not be {verb}", file=sys.stderr)
        raise typer.Exit(EXIT_PERMANENT)


def _plain(path: Path) -> str:
    """One line per file, whatever its name holds (a newline or a tab in a name is escaped)."""
    return str(path).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


if __name__ == "__main__":
    run(app)
