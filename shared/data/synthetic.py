"""A generated stand-in for Dogs vs. Cats, in Kaggle's archive layout, for demos and tests.

Both classes share backgrounds, palettes, sizes and clutter; only the animal's head differs:
cats have pointed ears standing up, dogs floppy ears hanging down and a longer muzzle. A small
convnet learns that in a few epochs, but not from colour or size alone.
"""

from __future__ import annotations

import io
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np

from shared.core.console import Advance

MIN_SIDE, MAX_SIDE = 150, 500  # the real photos' range, roughly


def _image(rng: np.random.Generator, label: str) -> tuple[bytes, tuple[float, float, float, float]]:
    """(the JPEG, the head's box: ears, muzzle and all, as fractions (left, top, right, bottom) of the image)."""
    from PIL import Image, ImageDraw, ImageFilter  # pillow ships with matplotlib

    w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    t = np.linspace(0.0, 1.0, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0.0, 1.0, h)[:, None, None]
    bg = c0 * (1 - t) + c1 * t + rng.normal(0, 18, size=(h, w, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):  # clutter shared by both classes
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(-w // 3, w // 3), y0 + rng.integers(-h // 3, h // 3)
        draw.line([(x0, y0), (x1, y1)], fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 6)))

    r = rng.uniform(0.16, 0.28) * min(w, h)
    cx, cy = rng.uniform(r * 1.6, w - r * 1.6), rng.uniform(r * 1.8, h - r * 1.6)
    fur = tuple(int(v) for v in rng.integers(20, 236, 3))
    ears = tuple(int(np.clip(v + rng.integers(-40, 41), 0, 255)) for v in fur)
    tilt = rng.uniform(-0.35, 0.35)

    def at(dx: float, dy: float) -> tuple[float, float]:
        return (cx + dx * math.cos(tilt) - dy * math.sin(tilt), cy + dx * math.sin(tilt) + dy * math.cos(tilt))

    corners = [(cx - r, cy - 0.9 * r), (cx + r, cy + 0.9 * r)]  # the face
    if label == "cat":
        for side in (-1, 1):
            ear = [at(side * 0.95 * r, -0.35 * r), at(side * 0.75 * r, -1.55 * r), at(side * 0.2 * r, -0.8 * r)]
            draw.polygon(ear, fill=ears)
            corners += ear
        draw.ellipse([cx - r, cy - 0.9 * r, cx + r, cy + 0.9 * r], fill=fur)
    else:
        draw.ellipse([cx - 0.5 * r, cy + 0.2 * r, cx + 0.5 * r, cy + 1.35 * r], fill=fur)  # muzzle
        corners += [(cx - 0.5 * r, cy + 1.35 * r)]
        draw.ellipse([cx - r, cy - 0.9 * r, cx + r, cy + 0.9 * r], fill=fur)
        for side in (-1, 1):
            ex, ey = at(side * 1.05 * r, 0.35 * r)
            draw.ellipse([ex - 0.33 * r, ey - 0.85 * r, ex + 0.33 * r, ey + 0.85 * r], fill=ears)
            corners += [(ex - 0.33 * r, ey - 0.85 * r), (ex + 0.33 * r, ey + 0.85 * r)]
    eye = tuple(int(v) for v in rng.integers(0, 256, 3))
    for side in (-1, 1):
        ex, ey = at(side * 0.38 * r, -0.15 * r)
        draw.ellipse([ex - 0.12 * r, ey - 0.12 * r, ex + 0.12 * r, ey + 0.12 * r], fill=eye)
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 1.5))))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=int(rng.integers(70, 95)))
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    box = (max(min(xs), 0) / w, max(min(ys), 0) / h, min(max(xs), w) / w, min(max(ys), h) / h)
    return out.getvalue(), box


def _rng(seed: int, index: int, label: str) -> np.random.Generator:
    # One stream per image: any image can be regenerated alone, and order does not matter.
    return np.random.default_rng([seed, index, label == "dog"])


def head_box(*, seed: int, index: int, label: str) -> tuple[float, float, float, float]:
    """Where the head of generated image `<label>.<index>.jpg` of archive `seed` is: the evidence of its class,
    as fractions (left, top, right, bottom) of the image (tests check that explanations point there)."""
    return _image(_rng(seed, index, label), label)[1]


def test1_count(per_class: int) -> int:
    """How many unlabeled images the stand-in's test1 has: half as many as one class, as Kaggle's 12,500
    against its 12,500 cats and 12,500 dogs is half of all of them."""
    return max(2, per_class // 2)


def test1_label(*, seed: int, image_id: int) -> str:
    """The class of test1's `<image_id>.jpg`: the answer Kaggle keeps, kept out of the archive for tests."""
    return "dog" if np.random.default_rng([seed, image_id, 2]).random() < 0.5 else "cat"


def _test1_image(seed: int, image_id: int) -> bytes:
    label = test1_label(seed=seed, image_id=image_id)
    return _image(np.random.default_rng([seed, image_id, 3]), label)[0]


def write_archive(*, path: Path, per_class: int, seed: int, scratch: Path, advance: Advance | None = None) -> Path:
    """Write a Kaggle-format `dogs-vs-cats.zip`: `train.zip` of `train/{cat,dog}.N.jpg`, `test1.zip` of
    unlabeled `test1/<id>.jpg` (ids from 1) and `sampleSubmission.csv` (`id,label`, every id once)."""
    scratch.mkdir(parents=True, exist_ok=True)
    train_zip = scratch / "train.zip"
    with zipfile.ZipFile(train_zip, "w", zipfile.ZIP_STORED) as zf:
        for i in range(per_class):
            for label in ("cat", "dog"):
                zf.writestr(_entry(f"train/{label}.{i}.jpg"), _image(_rng(seed, i, label), label)[0])
                if advance:
                    advance(1)
    ids = range(1, test1_count(per_class) + 1)
    test_zip = scratch / "test1.zip"
    with zipfile.ZipFile(test_zip, "w", zipfile.ZIP_STORED) as zf:
        for image_id in ids:
            zf.writestr(_entry(f"test1/{image_id}.jpg"), _test1_image(seed, image_id))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for inner in (train_zip, test_zip):
            with open(inner, "rb") as src, zf.open(_entry(inner.name), "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        zf.writestr(_entry("sampleSubmission.csv"), "id,label\n" + "".join(f"{i},0\n" for i in ids))
    train_zip.unlink()
    test_zip.unlink()
    return path


def _entry(name: str) -> zipfile.ZipInfo:
    """A fixed timestamp: the same seed gives the same archive, byte for byte."""
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
