"""The explain stage: each image with a Grad-CAM heat map over it, and what the model said of it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.core.errors import PermanentError
from shared.core.seeds import DEFAULT_SEED
from shared.reports.gradcam import Explainer, explainer, grad_cam, overlay
from shared.reports.predict import expand, load_file, load_run
from shared.training.catalog import ModelName
from shared.volume.fsutil import write_bytes
from shared.volume.layout import CLASSES, Volume, run_key

THUMBNAIL = 512  # the written picture's longer side at most: heat maps are coarser than that anyway


@dataclass(frozen=True)
class ExplainConfig:
    data_dir: Path
    model: ModelName
    paths: tuple[Path, ...]
    seed: int = DEFAULT_SEED
    out: Path | None = None  # None: reports/explained/<model>-seed-<S>/ on the volume


@dataclass(frozen=True)
class Explained:
    path: Path
    label: str | None = None
    p_dog: float | None = None
    written: Path | None = None
    error: str | None = None


def output_dir(vol: Volume, model: str, seed: int) -> Path:
    return vol.reports / "explained" / run_key(model, seed)


def picture(contents: bytes):
    """The image as a PIL picture (RGB), shrunk to THUMBNAIL for drawing."""
    from PIL import Image

    with Image.open(io.BytesIO(contents)) as im:
        im.draft("RGB", (THUMBNAIL, THUMBNAIL))
        im.thumbnail((THUMBNAIL, THUMBNAIL))
        return im.convert("RGB")


def explained_pictures(model, paths: list[Path], *, image_size: int) -> tuple[list, str]:
    """(each image with its heat map, as PIL pictures; the layer explained). Images that cannot be read
    are grey squares (evaluate lists mistakes among files that it has already read once)."""
    from PIL import Image

    explain_with = explainer(model)
    shown = []
    for path in paths:
        picture_, _, error = explain_one(explain_with, path, image_size=image_size)
        shown.append(picture_ if error is None else Image.new("RGB", (THUMBNAIL // 2, THUMBNAIL // 2),
                                                             (128, 128, 128)))
    return shown, explain_with.layer


def explain_one(explain_with: Explainer, path: Path, *, image_size: int):
    """(the picture with its heat map, p_dog, None) for a readable image; (None, None, why) for another."""
    contents, image, error = load_file(path, image_size)
    if error:
        return None, None, error
    cams, p = grad_cam(explain_with, image)
    return (overlay(picture(contents), cams[0], geometry=explain_with.geometry, size=image_size),
            float(np.asarray(p).ravel()[0]), None)


def explain(*, config: ExplainConfig) -> list[Explained]:
    """Explain each image (files, or folders of them) with the run's model; one PNG per readable image."""
    vol = Volume(config.data_dir)
    name = ModelName(config.model).value
    run, model = load_run(vol, name, config.seed, doing="explaining")
    files = expand(config.paths)
    if not files:
        raise PermanentError("no images to explain in " + ", ".join(str(p) for p in config.paths))
    explain_with = explainer(model)
    out = config.out or output_dir(vol, name, config.seed)
    results, taken = [], set()
    for path in files:
        shown, p_dog, error = explain_one(explain_with, path, image_size=run.image_size)
        if error:
            results.append(Explained(path, error=error))
            continue
        buffer = io.BytesIO()
        shown.save(buffer, format="PNG")
        target = out / _unique(path, taken)
        write_bytes(target, buffer.getvalue())
        results.append(Explained(path, CLASSES[int(p_dog > 0.5)], p_dog, target))
    return results


def _unique(path: Path, taken: set[str]) -> str:
    """`<stem>.gradcam.png`, numbered when two images of the same name come from different folders."""
    stem, n = path.stem or "image", 1
    name = f"{stem}.gradcam.png"
    while name in taken:
        n += 1
        name = f"{stem}-{n}.gradcam.png"
    taken.add(name)
    return name
