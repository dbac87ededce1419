"""The fetch stage: put Dogs vs. Cats images at raw/train on the volume, from one of three sources."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import archive as arc
from shared import kaggle_source, synthetic
from shared.errors import PermanentError, RetryableError
from shared.fsutil import clear_stale, read_json, remove, replace_dir, sha256_file, staged_dir, write_json
from shared.layout import CLASSES, Volume
from shared.progress import progress, say

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
    if vol.raw_manifest.exists() and not config.force:
        manifest = read_json(vol.raw_manifest)
        if manifest.get("identity") == identity:
            say(f"raw data already fetched from {describe(identity)}: nothing to do (--force redoes it)")
            return manifest
        raise PermanentError(f"the volume already holds data from {describe(manifest.get('identity', {}))}; "
                             f"pass --force to replace it with {describe(identity)}")
    if identity["source"] == LOCAL and not Path(config.source).exists():
        raise PermanentError(f"--source {config.source}: no such file or folder "
                             "(expected kaggle, synthetic, or a path)")
    # From here on the volume is incomplete until the manifest is written again.
    remove(vol.raw_manifest)
    clear_stale(vol.staging, "fetch")
    if config.force and not (identity["source"] == LOCAL and Path(config.source).resolve() == vol.archive.resolve()):
        remove(vol.archive)

    source = _archive_for(config, vol, identity)
    with staged_dir(vol.staging, "fetch") as tmp:
        images = tmp / "train"
        if source is None:
            _copy_folder(Path(config.source), images)
        else:
            _extract(source, images, scratch=tmp / "scratch", kaggle=identity["source"] == KAGGLE)
        counts = _verify(images, identity)
        replace_dir(images, vol.raw_images)
    manifest = {
        "identity": identity,
        "description": describe(identity),
        "archive_sha256": sha256_file(source) if source else None,
        "images": counts,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }
    write_json(vol.raw_manifest, manifest)  # last: its presence means raw/ is complete
    say(f"fetched {counts['cat']} cat and {counts['dog']} dog images from {describe(identity)} "
        f"into {vol.raw_images}")
    return manifest


def _archive_for(config: FetchConfig, vol: Volume, identity: dict) -> Path | None:
    kind = identity["source"]
    if kind == LOCAL:
        path = Path(config.source)
        return None if path.is_dir() else path
    if vol.archive.is_file():  # verified before it was renamed there: an earlier run got this far
        return vol.archive
    vol.raw.mkdir(parents=True, exist_ok=True)
    if kind == SYNTHETIC:
        with staged_dir(vol.staging, "fetch") as tmp:
            with progress("generating images", 2 * config.per_class) as advance:
                out = synthetic.write_archive(path=tmp / "dogs-vs-cats.zip", per_class=config.per_class,
                                              seed=config.seed, scratch=tmp / "scratch", advance=advance)
            os.replace(out, vol.archive)
        return vol.archive
    say(f"downloading {kaggle_source.COMPETITION} from Kaggle into {vol.downloads}")
    out = kaggle_source.download(dest_dir=vol.downloads, retries=config.retries, backoff_s=config.backoff_s,
                                 quiet=False)
    try:
        with zipfile.ZipFile(out) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as e:
        bad = str(e)
    if bad is not None:
        remove(out)
        raise RetryableError(f"the downloaded archive is corrupt ({bad}); it was removed, run again")
    os.replace(out, vol.archive)
    return vol.archive


def _extract(source: Path, dest: Path, *, scratch: Path, kaggle: bool) -> None:
    try:
        with arc.open_train_archive(source, scratch=scratch) as zf:
            with progress(f"extracting {source.name}", arc.count_images(zf)) as advance:
                arc.extract_images(zf, dest, archive=source.name, advance=advance)
    except PermanentError:
        if kaggle:  # a bad download: drop it so the next run downloads again
            remove(source)
        raise


def _copy_folder(folder: Path, dest: Path) -> None:
    root = folder / "train" if (folder / "train").is_dir() else folder
    names = sorted(p.name for p in root.iterdir() if arc.IMAGE_NAME.match(p.name) and p.is_file())
    if not names:
        raise PermanentError(f"{folder} holds no cat.N.jpg/dog.N.jpg images (nor a train/ folder of them)")
    dest.mkdir(parents=True)
    with progress(f"copying {root}", len(names)) as advance:
        for name in names:
            shutil.copyfile(root / name, dest / name)
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
