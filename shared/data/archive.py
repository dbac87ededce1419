"""Safe reading of Kaggle-format archives: refuse escaping paths, links and absurd sizes."""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from shared.core.console import Advance
from shared.core.errors import PermanentError
from shared.volume.fsutil import no_follow

IMAGE_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpg$")
TEST_NAME = re.compile(r"^([1-9][0-9]{0,6})\.jpg$")  # Kaggle's unlabeled test1/<id>.jpg, ids from 1
TEST_ZIP, SAMPLE_SUBMISSION = "test1.zip", "sampleSubmission.csv"
MAX_SAMPLE_BYTES = 1 << 20  # Kaggle's is 86 kB
# The real dogs-vs-cats.zip is 0.85 GB and unpacks to about as much (JPEGs do not compress);
# anything declaring several times that is not this dataset, or is a zip bomb.
MAX_DECLARED_BYTES = 4 << 30
MAX_ENTRIES = 100_000
MAX_RATIO = 200
TRAIN_ZIP = "train.zip"


def _refuse(archive: str, reason: str) -> PermanentError:
    return PermanentError(f"refusing archive {archive}: {reason}")


def check_members(zf: zipfile.ZipFile, *, archive: str) -> list[zipfile.ZipInfo]:
    """Every entry, once each entry is shown to stay inside the target and the total to be sane."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _refuse(archive, f"{len(infos)} entries is more than this dataset has")
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (parts and re.match(r"^[A-Za-z]:", parts[0])):
            raise _refuse(archive, f"entry {name!r} has an absolute path")
        if ".." in parts:
            raise _refuse(archive, f"entry {name!r} escapes the target folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(archive, f"entry {name!r} is a symbolic link")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1 << 20:
            raise _refuse(archive, f"entry {name!r} expands {info.file_size // info.compress_size}x")
        total += info.file_size
    if total > MAX_DECLARED_BYTES:
        raise _refuse(archive, f"it declares {total / (1 << 30):.1f} GiB uncompressed, "
                               f"more than {MAX_DECLARED_BYTES >> 30} GiB is absurd for Dogs vs. Cats")
    return infos


def _open_zip(path: Path, *, label: str | None = None) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise PermanentError(f"{label or path} is not a readable zip archive ({e})") from None


def _image_members(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    return [i for i in infos if not i.is_dir() and IMAGE_NAME.match(PurePosixPath(i.filename).name)]


@contextmanager
def open_train_archive(path: Path, *, scratch: Path, label: str | None = None) -> Iterator[zipfile.ZipFile]:
    """The zip holding cat.N.jpg/dog.N.jpg: `path` itself (a train.zip) or the train.zip inside it.

    Messages name `label` (what the user gave), never the temporary copy of an inner train.zip.
    """
    label = label or str(path)
    outer = _open_zip(path, label=label)
    with outer:
        infos = check_members(outer, archive=label)
        nested = [i for i in infos if PurePosixPath(i.filename).name == TRAIN_ZIP]
        if _image_members(infos):
            yield outer
            return
        if not nested:
            raise PermanentError(f"{label} is not a Dogs vs. Cats archive: "
                                 "it holds neither train.zip nor cat.N.jpg/dog.N.jpg images")
        scratch.mkdir(parents=True, exist_ok=True)
        inner_path = scratch / TRAIN_ZIP
        _copy_member(outer, nested[0], inner_path, archive=label)
    inner = _open_zip(inner_path, label=f"the train.zip inside {label}")
    with inner:
        yield inner


# What zipfile raises for a damaged or unreadable member: a bad CRC or header, a cut stream, a corrupt
# deflate stream (zlib.error), a compression method it lacks (NotImplementedError), an encrypted member
# (RuntimeError: "password required"). All are bad input: exit 3, never a traceback.
MEMBER_ERRORS = (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError)


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, *, archive: str) -> None:
    try:
        src = zf.open(info)
    except MEMBER_ERRORS as e:
        raise PermanentError(f"archive {archive} cannot be read at {info.filename}: {e}") from None
    with src, open(dest, "wb", opener=no_follow) as out:
        try:
            while block := src.read(1 << 20):
                out.write(block)
        except MEMBER_ERRORS as e:  # raised while reading; a write error (a full disk) stays an OSError
            raise PermanentError(f"archive {archive} is corrupt at {info.filename}: {e}") from None


def first_bad_member(path: Path) -> str | None:
    """zipfile's testzip() with every read error mapped: the first unreadable member's name and why, or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip()
    except zipfile.BadZipFile as e:
        return str(e)
    except MEMBER_ERRORS as e:
        return f"{type(e).__name__}: {e}"


def extract_images(zf: zipfile.ZipFile, dest: Path, *, archive: str, advance: Advance | None = None) -> int:
    """Extract the cat/dog images flat into `dest`; CRCs are checked as each one is read."""
    images = _image_members(check_members(zf, archive=archive))
    if not images:
        raise PermanentError(f"archive {archive} holds no cat.N.jpg/dog.N.jpg images")
    return _extract_flat(zf, images, dest, archive=archive, advance=advance)


def _extract_flat(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, *, archive: str,
                  advance: Advance | None = None) -> int:
    """The members (already checked) by their base names into `dest`; a name twice is refused."""
    seen: set[str] = set()
    dest.mkdir(parents=True, exist_ok=True)
    for info in members:
        name = PurePosixPath(info.filename).name
        if name in seen:
            raise _refuse(archive, f"{name} appears twice")
        seen.add(name)
        _copy_member(zf, info, dest / name, archive=archive)
        if advance:
            advance(1)
    return len(members)


def count_images(zf: zipfile.ZipFile) -> int:
    return len(_image_members(zf.infolist()))


def extract_test1(path: Path, dest: Path, *, scratch: Path, label: str | None = None) -> tuple[int, bytes | None]:
    """Kaggle's unlabeled test set from an outer dogs-vs-cats.zip, when it holds one: test1.zip's `<id>.jpg`
    flat into `dest`, and sampleSubmission.csv's bytes. (0, None) for an archive without them (a train.zip)."""
    label = label or str(path)
    with _open_zip(path, label=label) as outer:
        infos = check_members(outer, archive=label)
        by_name = {PurePosixPath(i.filename).name: i for i in infos if not i.is_dir()}
        sample = None
        if SAMPLE_SUBMISSION in by_name:
            info = by_name[SAMPLE_SUBMISSION]
            if info.file_size > MAX_SAMPLE_BYTES:
                raise _refuse(label, f"{SAMPLE_SUBMISSION} declares {info.file_size} bytes")
            try:
                sample = outer.read(info)
            except MEMBER_ERRORS as e:
                raise PermanentError(f"archive {label} is corrupt at {info.filename}: {e}") from None
        if TEST_ZIP not in by_name:
            return 0, sample
        scratch.mkdir(parents=True, exist_ok=True)
        _copy_member(outer, by_name[TEST_ZIP], scratch / TEST_ZIP, archive=label)
    inner_label = f"the {TEST_ZIP} inside {label}"
    with _open_zip(scratch / TEST_ZIP, label=inner_label) as inner:
        images = [i for i in check_members(inner, archive=inner_label)
                  if not i.is_dir() and TEST_NAME.match(PurePosixPath(i.filename).name)]
        count = _extract_flat(inner, images, dest, archive=inner_label)
    (scratch / TEST_ZIP).unlink()
    return count, sample
