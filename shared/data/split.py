"""The split stage: the seed's small subset, per class: 0-999 train, 1000-1499 validation, 1500-2499 test."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.core.console import progress, say
from shared.core.errors import PermanentError, UsageError
from shared.core.hints import run_hint
from shared.volume.fsutil import (
    clear_stale,
    ensure_free,
    no_follow,
    read_record,
    replace_dir,
    sha256_file,
    staged_dir,
    write_json,
)
from shared.volume.layout import CLASSES, SUBSETS, Volume


@dataclass(frozen=True)
class SplitConfig:
    data_dir: Path
    train: int = 1000
    validation: int = 500
    test: int = 1000
    skip_corrupt: bool = False
    force: bool = False


def decodes(data: bytes) -> bool:
    """Whether TensorFlow, which reads the images for training, can decode them, within a photo's pixels."""
    import tensorflow as tf

    from shared.data.pipeline import image_problem

    if image_problem(data) is not None:
        return False
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        return False
    return True


def _params(config: SplitConfig, raw_manifest: dict) -> dict:
    return {"train": config.train, "validation": config.validation, "test": config.test,
            "skip_corrupt": config.skip_corrupt, "source": raw_manifest["identity"],
            "source_fetched_at": raw_manifest["fetched_at"]}


MANIFEST_FIELDS = {"fingerprint": str, "params": dict, "counts": dict, "files": dict, "source": str}
RAW_FIELDS = {"identity": dict, "images": dict, "description": str, "fetched_at": str}


def load_manifest(vol: Volume) -> dict:
    if not vol.split_manifest.exists():
        raise PermanentError(f"no split on the volume at {vol.subsets}: run the split stage first: "
                             f"{run_hint('split', 'make split')}")
    return read_record(vol.split_manifest, fields=MANIFEST_FIELDS,
                       redo=run_hint("split --force", "make split FORCE=1"))


def load_raw_manifest(vol: Volume) -> dict:
    if not vol.raw_manifest.exists():
        raise PermanentError(f"no fetched data at {vol.raw}: run the fetch stage first: "
                             f"{run_hint('fetch', 'make fetch')}")
    return read_record(vol.raw_manifest, fields=RAW_FIELDS, redo=run_hint("fetch --force", "make fetch FORCE=1"))


def check_subset(vol: Volume, manifest: dict, subset: str) -> None:
    """The subset's files are exactly those its manifest lists, byte for byte (sha256); else a PermanentError
    naming the first difference: scoring other images than the split's would report a number about nothing."""
    redo = run_hint("split --force", "make split FORCE=1")
    for c in CLASSES:
        folder = vol.subset(subset) / c
        listed = {f["name"]: f["sha256"] for f in manifest["files"].get(subset, {}).get(c, [])
                  if isinstance(f, dict) and "name" in f}
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        for name in sorted(set(listed) ^ set(present)):
            where = "missing from" if name in listed else "not in the manifest, but in"
            raise PermanentError(f"the {subset} subset does not match its manifest: {name} is {where} {folder}; "
                                 f"redo the split: {redo}")
        for name in present:
            path = folder / name
            if not path.is_file() or path.is_symlink() or sha256_file(path) != listed[name]:
                raise PermanentError(f"the {subset} subset does not match its manifest: {path} has changed since "
                                     f"the split; redo it: {redo}")


def split(*, config: SplitConfig) -> dict:
    """Make the split, or do nothing if it exists with these parameters. Returns its manifest."""
    vol = Volume(config.data_dir)
    # Checked again under the lock: another may just have finished. raw/ stays as read until the end.
    with vol.lock("split", what="a split"), vol.reading("raw", what="a split"):
        return _split(config, vol)


def _split(config: SplitConfig, vol: Volume) -> dict:
    if min(config.train, config.validation, config.test) < 1:
        raise PermanentError("--train, --validation and --test must each be at least 1 image per class")
    raw_manifest = load_raw_manifest(vol)
    params = _params(config, raw_manifest)
    total = config.train + config.validation + config.test
    available = min(raw_manifest.get("images", {}).get(c, 0) for c in CLASSES)
    if total > available:
        raise UsageError(f"--train {config.train} + --validation {config.validation} + --test {config.test} = "
                         f"{total} images per class, but the fetched data has {available} per class")
    if vol.split_manifest.exists() and not config.force:  # --force replaces even a split it cannot read
        current = load_manifest(vol)
        if current.get("params") == params:
            say(f"split already made with these parameters at {vol.subsets}: nothing to do (--force redoes it)")
            return current
        raise PermanentError(f"a split exists at {vol.subsets} {_difference(current.get('params', {}), params)}; "
                             "pass --force to replace it")

    bounds, start = {}, 0
    for subset in SUBSETS:
        size = getattr(config, subset)
        bounds[subset] = (start, start + size)
        start += size
    total = start
    missing = [f"{c}.{i}.jpg" for c in CLASSES for i in range(total)
               if not (vol.raw_images / f"{c}.{i}.jpg").is_file()]
    if missing:
        raise PermanentError(f"{len(missing)} of the {2 * total} images the split needs are missing from "
                             f"{vol.raw_images}: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    needed = sum((vol.raw_images / f"{c}.{i}.jpg").stat().st_size for c in CLASSES for i in range(total))
    ensure_free(vol.root, needed, what=f"the split ({2 * total} images)")

    clear_stale(vol.staging, "split")
    with vol.replacing("subsets", what="a split"), staged_dir(vol.staging, "split") as tmp:
        out = tmp / "subsets"
        files, substitutions = {s: {c: [] for c in CLASSES} for s in SUBSETS}, []
        spare = {c: total for c in CLASSES}  # the next unused index, should a substitute be needed
        with progress("checking and copying images", 2 * total) as advance:
            for subset, (lo, hi) in bounds.items():
                for c in CLASSES:
                    folder = out / subset / c
                    folder.mkdir(parents=True)
                    for i in range(lo, hi):
                        name, data = f"{c}.{i}.jpg", (vol.raw_images / f"{c}.{i}.jpg").read_bytes()
                        while not decodes(data):
                            if not config.skip_corrupt:
                                raise PermanentError(f"{vol.raw_images / name} does not decode as an image; "
                                                     "pass --skip-corrupt to use the next unused image instead")
                            bad, name = name, f"{c}.{spare[c]}.jpg"
                            spare[c] += 1
                            if not (vol.raw_images / name).is_file():
                                raise PermanentError(f"{bad} is corrupt and there is no unused {c} image "
                                                     "left to replace it")
                            data = (vol.raw_images / name).read_bytes()
                            substitutions.append({"subset": subset, "class": c, "corrupt": bad,
                                                  "replaced_by": name})
                            say(f"{bad} is corrupt: using {name} instead")
                        with open(folder / name, "wb", opener=no_follow) as image:
                            image.write(data)
                        files[subset][c].append({"name": name, "sha256": hashlib.sha256(data).hexdigest()})
                        advance(1)
        manifest = {
            "params": params,
            "source": raw_manifest["description"],
            "counts": {s: {c: len(files[s][c]) for c in CLASSES} for s in SUBSETS},
            "files": files,
            "substitutions": substitutions,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        }
        manifest["fingerprint"] = hashlib.sha256(repr(sorted(
            (s, c, f["name"], f["sha256"]) for s in SUBSETS for c in CLASSES for f in files[s][c]
        )).encode()).hexdigest()[:16]
        write_json(out / "manifest.json", manifest)
        replace_dir(out, vol.subsets)
    say(f"split {_sizes(params)} images per class from {raw_manifest['description']} into {vol.subsets}"
        + (f" ({len(substitutions)} corrupt images substituted)" if substitutions else ""))
    return manifest


def _difference(old: dict, new: dict) -> str:
    """How an existing split differs from the one asked for, in the user's terms."""
    if any(old.get(k) != new[k] for k in (*SUBSETS, "skip_corrupt")):
        return f"with other sizes ({_sizes(old)}, asked {_sizes(new)})"
    if old.get("source") != new["source"]:
        return "of data from another source"
    return (f"of the data as fetched at {old.get('source_fetched_at')}; it was fetched again at "
            f"{new['source_fetched_at']}")


def _sizes(params: dict) -> str:
    return "/".join(str(params.get(s, "?")) for s in SUBSETS) + " train/validation/test"
