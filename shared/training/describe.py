"""What a model is: Keras's summary (nested VGG16 expanded, each layer's trainable flag) and its parameter
counts, as the seed prints them with model.summary(). `train` writes it beside each run (summary.txt);
`catsdogs describe` builds a model with random weights to show it without training (the counts and
shapes do not depend on the weights)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shared.training.catalog import ModelName, spec

LINE_LENGTH = 150  # narrower, Keras drops the parameter and trainable columns


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters (the seed's point: frozen VGG16 leaves the head)."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen}


def summary_text(model) -> str:
    lines: list[str] = []
    # Keras renders the table on a rich console as wide as the terminal (80 in a pod's log), which cuts the
    # table's right columns whatever line_length says: rich reads COLUMNS for a console that is no terminal.
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(LINE_LENGTH)
    try:
        model.summary(print_fn=lambda line, *_, **__: lines.append(line), expand_nested=True, show_trainable=True,
                      line_length=LINE_LENGTH)
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before
    counts = parameter_counts(model)
    lines.append(f"parameters: {counts['total']:,} total, {counts['trainable']:,} trainable, "
                 f"{counts['non_trainable']:,} non-trainable")
    return "\n".join(lines) + "\n"


def build_unweighted(name: ModelName | str, *, image_size: int, folder: Path):
    """The model as `train` builds it, with random weights: a model that starts from another gets that one
    built the same way (and saved into `folder`, as the base's checkpoint would be)."""
    s = spec(name)
    inputs: dict = {"image_size": image_size, "learning_rate": None, "seed": 0, "weights": None,
                    "jit_compile": False}
    if s.starts_from is not None:
        base = build_unweighted(s.starts_from, image_size=image_size, folder=folder)
        inputs["base_model_path"] = folder / f"{s.starts_from.value}.keras"
        base.save(inputs["base_model_path"])
    return s.build(**inputs)


def describe(*, model: ModelName | str, image_size: int) -> tuple[str, dict[str, int]]:
    """(the summary's text, the parameter counts) of `model` at `image_size`, without training it."""
    with tempfile.TemporaryDirectory(prefix="catsdogs-describe-") as tmp:
        built = build_unweighted(model, image_size=image_size, folder=Path(tmp))
        return summary_text(built), parameter_counts(built)
