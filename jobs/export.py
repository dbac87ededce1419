"""Export: trained models as SavedModels for TF Serving and KServe (encoded images in, p_dog and label out)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import bounded
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("export", help=__doc__)
@stage
def main(
    model: Annotated[ModelName | None, typer.Option(
        help=f"Which model (default: every trained one): {help_text()}.", show_default=False)] = None,
    data: DataDir = None,
    seed: Annotated[int | None, bounded(
        "seed", help="Which run of the model (default: every trained seed).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="saved_model (TF Serving, KServe), or onnx (float pixels in, p_dog out; checked with "
                         "onnxruntime, refused with exit 3 where the converter cannot do a model).")] = "saved_model",
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.serving.export import ExportConfig, export

    for result in export(config=ExportConfig(data_dir=root, model=model, seed=seed, format=fmt)):
        print(f"{result.model}\tseed {result.seed}\tversion {result.version}\t{result.path}")


if __name__ == "__main__":
    run(app)
