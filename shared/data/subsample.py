"""A training subset of the split, as a volume of its own: the learning curve's data for one size.

The first `train_size / 2` images of each class of the split's training subset (the split lists them in
Kaggle's numbering, so a smaller set is always part of a larger one), and the split's validation and test
subsets as they are: every size is scored on the same test images. The files are hard links to the
split's (copies where the filesystem has none); the manifest is the split's, cut, with a fingerprint of
its own, so a model trained on one size is never taken for one trained on another.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil

from shared.core.console import say
from shared.core.errors import UsageError
from shared.data.split import load_manifest
from shared.volume.fsutil import clear_stale, read_cached, replace_dir, staged_dir, write_json
from shared.volume.layout import CLASSES, SUBSETS, Volume


def fingerprint(files: dict) -> str:
    """The split's own formula (shared/data/split.py): the files of every subset, by name and content."""
    return hashlib.sha256(repr(sorted(
        (s, c, f["name"], f["sha256"]) for s in SUBSETS for c in CLASSES for f in files[s][c]
    )).encode()).hexdigest()[:16]


def check_size(train_size: int, split_manifest: dict) -> int:
    """Images per class for `train_size` training images; a UsageError when the split cannot give them."""
    available = min(split_manifest["counts"]["train"].get(c, 0) for c in CLASSES)
    if train_size % len(CLASSES) or not 0 < train_size // len(CLASSES) <= available:
        raise UsageError(f"--sizes {train_size}: expected an even number of training images from {len(CLASSES)} "
                         f"to {len(CLASSES) * available} (the split's training subset: {available} per class)")
    return train_size // len(CLASSES)


def subsample(*, vol: Volume, train_size: int) -> Volume:
    """The learning-curve volume of `train_size` training images, made or reused; returns it."""
    sub = vol.learning(train_size)
    with vol.lock(f"learning-train-{train_size}", what=f"the {train_size}-image training subset", wait_s=None), \
            vol.reading("subsets", what=f"the {train_size}-image training subset"):
        parent = load_manifest(vol)
        per_class = check_size(train_size, parent)
        current = read_cached(sub.split_manifest) or {}
        if current.get("parent") == parent["fingerprint"] and current.get("train_size") == train_size:
            return sub
        files = {s: {c: list(parent["files"][s][c]) for c in CLASSES} for s in SUBSETS}
        for c in CLASSES:
            files["train"][c] = files["train"][c][:per_class]
        manifest = {**parent, "files": files, "parent": parent["fingerprint"], "train_size": train_size,
                    "counts": {s: {c: len(files[s][c]) for c in CLASSES} for s in SUBSETS},
                    "params": {**parent["params"], "train": per_class},
                    "source": f"{parent['source']}, {train_size} of its training images"}
        manifest["fingerprint"] = fingerprint(files)
        clear_stale(vol.staging, f"learning-{train_size}")
        with staged_dir(vol.staging, f"learning-{train_size}") as tmp:
            out = tmp / "subsets"
            for s in SUBSETS:
                for c in CLASSES:
                    (out / s / c).mkdir(parents=True)
                    for f in files[s][c]:
                        _link(vol.subset(s) / c / f["name"], out / s / c / f["name"])
            write_json(out / "manifest.json", manifest)
            sub.root.mkdir(parents=True, exist_ok=True)
            with sub.replacing("subsets", what=f"the {train_size}-image training subset"):
                replace_dir(out, sub.subsets)
    say(f"learning curve: {per_class} training images per class at {sub.subsets}")
    return sub


def _link(src, dst) -> None:
    """A hard link to the split's file (it is never written in place: a new split renames new files in)."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(src, dst, follow_symlinks=False)
