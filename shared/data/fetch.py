"""The fetch stage: put Dogs vs. Cats images at raw/train on the volume, from one of three sources."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.core.console import progress, say
from shared.core.errors import PermanentError, RetryableError
from shared.data import archive as arc
from shared.data import kaggle_source, synthetic
from shared.volume.fsutil import (
    clear_stale,
    ensure_free,
    no_follow,
    remove,
    replace_dir,
    sha256_file,
    staged_dir,
    write_json,
)
from shared.volume.layout import CLASSES, Volume

KAGGLE = "kaggle"
SYNTHETIC = "synthetic"
LOCAL = "local archive"
KAGGLE_PER_CLASS = 12_500


@dataclass(frozen=True)
class FetchConfig:
    data_dir: Path
    source: str = KAGGLE  # "kaggle", "synthetic", or a path
    per_class: int = 2500
    seed: int = 0
    force: bool = False
    retries: int = 4
    backoff_s: float = 2.0


def source_kind(source: str) -> str:
    return source if source in (KAGGLE, SYNTHETIC) else LOCAL


def _identity(config: FetchConfig) -> dict:
    kind = source_kind(config.source)
    if kind == KAGGLE:
        return {"source": KAGGLE, "competition": kaggle_source.COMPETITION}
    if kind == SYNTHETIC:
        return {"source": SYNTHETIC, "per_class": config.per_class, "seed": config.seed}
    return {"source": LOCAL, "path": str(Path(config.source).resolve())}


def describe(identity: dict) -> str:
    if identity["source"] == KAGGLE:
        return f"Kaggle competition {identity['competition']}"
    if identity["source"] == SYNTHETIC:
        return f"generated stand-in ({identity['per_class']} per class, seed {identity['seed']})"
    return f"local archive {identity['path']}"


def fetch(*, config: FetchConfig) -> dict:
    """Fetch, or do nothing when the volume already holds this source's data. Returns the manifest."""
    vol = Volume(config.data_dir)
    with vol.lock("fetch", what="a fetch"):
        return _fetch(config, vol)


def _fetch(config: FetchConfig, vol: Volume) -> dict:
    identity = _identity(config)
    if vol.raw_manifest.exists() and not config.force:  # --force replaces even a manifest it cannot read
        from shared.data.split import load_raw_manifest

        manifest = load_raw_manifest(vol)
        if manifest.get("identity") == identity:
            say(f"raw data already fetched from {describe(identity)}: nothing to do (--force redoes it)")
            return manifest
        raise PermanentError(f"the volume already holds data from {describe(manifest.get('identity', {}))}; "
                             f"pass --force to replace it with {describe(identity)}")
    if identity["source"] == LOCAL:
        _check_local_source(Path(config.source))
    ensure_free(vol.root, _space_needed(config, identity), what=f"fetching from {describe(identity)}")
    clear_stale(vol.staging, "fetch")
    # Everything is built aside and verified; the volume's raw/ changes only in the renames at the end,
    # so a failure (bad archive, full disk, kill) leaves the data it had, --force or not.
    with staged_dir(vol.staging, "fetch") as tmp:
        source = _archive_for(config, vol, identity, tmp)
        images = tmp / "train"
        if source is None:
            _copy_folder(Path(config.source), images)
        else:
            _extract(source, images, scratch=tmp / "scratch", kaggle=identity["source"] == KAGGLE,
                     label=str(config.source) if identity["source"] == LOCAL else describe(identity))
        counts = _verify(images, identity)
        test1, sample = (0, None) if source is None else arc.extract_test1(
            source, tmp / "test1", scratch=tmp / "scratch",
            label=str(config.source) if identity["source"] == LOCAL else describe(identity))
        if sample is not None:
            with open(tmp / arc.SAMPLE_SUBMISSION, "wb", opener=no_follow) as f:
                f.write(sample)
        archive_sha256 = sha256_file(source) if source else None
        manifest = {
            "identity": identity,
            "description": describe(identity),
            "archive_sha256": archive_sha256,
            "images": counts,
            "test1": {"images": test1, "sample_submission": sample is not None},  # Kaggle's unlabeled set
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        }
        with vol.replacing("raw", what=f"a fetch from {describe(identity)}"):  # no split reads it meanwhile
            remove(vol.raw_manifest)  # from here to the new manifest, raw/ is incomplete: a re-run redoes it
            vol.raw.mkdir(parents=True, exist_ok=True)
            if source is not None and source.parent in (tmp, vol.downloads):
                os.replace(source, vol.archive)
            elif source is None or source.resolve() != vol.archive.resolve():
                remove(vol.archive)  # a local source stays where it is; the volume keeps no stale copy
            replace_dir(images, vol.raw_images)
            if test1:
                replace_dir(tmp / "test1", vol.test1)
            else:
                remove(vol.test1)  # another source's: not this data's test set
            if sample is not None:
                os.replace(tmp / arc.SAMPLE_SUBMISSION, vol.sample_submission)
            else:
                remove(vol.sample_submission)
            write_json(vol.raw_manifest, manifest)  # last: its presence means raw/ is complete
    say(f"fetched {counts['cat']} cat and {counts['dog']} dog images from {describe(identity)} "
        f"into {vol.raw_images}" + (f", and {test1} unlabeled test images into {vol.test1}" if test1 else ""))
    return manifest


# Bytes a fetch writes at most: the archive (kept) and the images extracted from it.
KAGGLE_BYTES = 2_300_000_000  # 850 MB zip, its 570 MB train.zip in scratch, 545 MB of images
SYNTHETIC_IMAGE_BYTES = 60_000  # generated JPEGs average 25-35 KB; twice, archive and extracted


def _space_needed(config: FetchConfig, identity: dict) -> int:
    if identity["source"] == KAGGLE:
        return KAGGLE_BYTES
    if identity["source"] == SYNTHETIC:
        return 2 * config.per_class * SYNTHETIC_IMAGE_BYTES
    path = Path(config.source)
    if path.is_dir():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return 3 * path.stat().st_size  # the archive, a nested train.zip, the images


def _check_local_source(path: Path) -> None:
    """A folder or a regular file: zipfile would block forever on a FIFO and read /dev/zero without end."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise PermanentError(f"--source {path}: no such file or folder (expected kaggle, synthetic, or a path)"
                             ) from None
    if stat.S_ISLNK(mode):
        raise PermanentError(f"--source {path}: a symbolic link (not followed): give the file it points to")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise PermanentError(f"--source {path}: not a regular file or a folder (a FIFO, a device or a socket)")


def _archive_for(config: FetchConfig, vol: Volume, identity: dict, tmp: Path) -> Path | None:
    """The archive to extract: the local one, or one generated or downloaded aside (None: a folder)."""
    kind = identity["source"]
    if kind == LOCAL:
        path = Path(config.source)
        return None if path.is_dir() else path
    if kind == SYNTHETIC:
        with progress("generating images", 2 * config.per_class) as advance:
            return synthetic.write_archive(path=tmp / "dogs-vs-cats.zip", per_class=config.per_class,
                                           seed=config.seed, scratch=tmp / "scratch", advance=advance)
    say(f"downloading {kaggle_source.COMPETITION} from Kaggle into {vol.downloads}")
    out = kaggle_source.download(dest_dir=vol.downloads, retries=config.retries, backoff_s=config.backoff_s,
                                 quiet=False)
    bad = arc.first_bad_member(out)
    if bad is not None:
        remove(out)
        raise RetryableError(f"the downloaded archive is corrupt ({bad}); it was removed, run again")
    return out


def _extract(source: Path, dest: Path, *, scratch: Path, kaggle: bool, label: str) -> None:
    try:
        with arc.open_train_archive(source, scratch=scratch, label=label) as zf:
            with progress(f"extracting {source.name}", arc.count_images(zf)) as advance:
                arc.extract_images(zf, dest, archive=label, advance=advance)
    except PermanentError:
        if kaggle:  # a bad download: drop it so the next run downloads again
            remove(source)
        raise


def _copy_folder(folder: Path, dest: Path) -> None:
    """Regular files only: a symbolic link or a special file is skipped by name, never followed."""
    inner = folder / "train"
    root = inner if inner.is_dir() and not inner.is_symlink() else folder
    names, skipped = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if arc.IMAGE_NAME.match(entry.name):
            (names if entry.is_file(follow_symlinks=False) else skipped).append(entry.name)
    if skipped:
        say(f"warning: skipped {len(skipped)} entries of {root} that are not regular files "
            f"(symbolic links or special files are not followed): {', '.join(skipped[:10])}")
    if not names:
        raise PermanentError(f"{folder} holds no cat.N.jpg/dog.N.jpg images (nor a train/ folder of them)")
    dest.mkdir(parents=True)
    with progress(f"copying {root}", len(names)) as advance:
        for name in names:
            with open(root / name, "rb", opener=no_follow) as src, open(dest / name, "wb", opener=no_follow) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            advance(1)


def _verify(images: Path, identity: dict) -> dict[str, int]:
    counts = {c: 0 for c in CLASSES}
    for p in images.iterdir():
        counts[p.name.split(".", 1)[0]] += 1
    expected = {KAGGLE: KAGGLE_PER_CLASS, SYNTHETIC: identity.get("per_class")}.get(identity["source"])
    if expected is not None and any(n != expected for n in counts.values()):
        raise PermanentError(f"expected {expected} images per class, found {counts['cat']} cats and "
                             f"{counts['dog']} dogs")
    missing = [c for c, n in counts.items() if n == 0]
    if missing:
        raise PermanentError(f"the source has no {' and no '.join(missing)} images")
    return counts
