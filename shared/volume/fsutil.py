"""Write to a temporary name, rename into place when complete: nothing half-written at a final path."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.core.errors import PermanentError
from shared.core.paths import no_follow


def write_marker(path: Path, text: str) -> None:
    """A small file at a name in a folder of our own (COMPLETE), never through a link."""
    with open(path, "w", opener=no_follow) as f:
        f.write(text)


def write_text(path: Path, text: str) -> Path:
    """Atomically replace `path` with `text`, under a temporary name no other writer can share."""
    return write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically replace `path` with `data`, under a temporary name no other writer can share."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users of a shared volume
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: Path, data: Any) -> Path:
    """Atomically replace `path` with `data` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")  # strict JSON


def read_json(path: Path) -> Any:
    """The file's JSON; a truncated or garbled file is a PermanentError that names it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PermanentError(f"{path} is corrupt ({e}): delete it, or redo the stage that wrote it with "
                             "--force") from None


def read_record(path: Path, *, fields: dict[str, type], redo: str) -> dict:
    """A JSON object with these fields of these types, or a PermanentError naming the file and `redo`, the
    command that rewrites it (valid JSON of the wrong shape is as corrupt as a truncated file)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PermanentError(f"{path} is corrupt ({e}): rewrite it with {redo}") from None
    wrong = shape_problem(data, fields)
    if wrong:
        raise PermanentError(f"{path} is corrupt ({wrong}): rewrite it with {redo}")
    return data


def shape_problem(data: object, fields: dict[str, type]) -> str | None:
    """What keeps `data` from being a JSON object with these fields of these types (a bool is no int)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    return next((f"{key!r} is missing or not {kind.__name__}" for key, kind in fields.items()
                 if not isinstance(data.get(key), kind) or (kind is int and isinstance(data.get(key), bool))), None)


def read_cached(path: Path, *, fields: dict[str, type] | None = None,
                renamed: dict[str, str] | None = None) -> dict | None:
    """A JSON object that can simply be computed again: None when missing, garbled or of another shape
    (`fields`: the keys it must have, with their types; `renamed`: old key -> current key, for files an
    earlier version wrote)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and renamed:
        data = {renamed.get(k, k): v for k, v in data.items()}
    return data if shape_problem(data, fields or {}) is None else None


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def clear_stale(staging: Path, prefix: str) -> None:
    """Remove what a killed run of the same stage left behind: staged_dir's names for `prefix` exactly.
    A glob on f"{prefix}-*" also took "evaluate-scratch-augmented-..." for "evaluate-scratch", the folder
    another pod was writing into at that moment."""
    if not staging.is_dir():
        return
    ours = re.compile(re.escape(prefix) + r"-[^-]+")  # mkdtemp's suffix has no hyphen; another prefix's does
    for leftover in staging.glob(f"{prefix}-*"):
        if ours.fullmatch(leftover.name):
            remove(leftover)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def staged_dir(staging: Path, prefix: str) -> Iterator[Path]:
    """A fresh temporary folder under `staging`, removed unless the caller moved it away."""
    staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=staging, prefix=f"{prefix}-"))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide results from other users of a shared volume
    try:
        yield tmp
    finally:
        remove(tmp)


def replace_dir(src: Path, dst: Path) -> None:
    """Put folder `src` at `dst`, replacing any folder there with as short a gap as renames allow."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex}")  # pids repeat across pods
        remove(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        remove(old)


def ensure_free(path: Path, needed: int, *, what: str) -> None:
    """Refuse before writing rather than fill the disk halfway: a PermanentError that says how much."""
    free = free_bytes(path)
    if needed > free:
        raise PermanentError(f"{what} needs about {size_text(needed)} on {path}, which has "
                             f"{size_text(free)} free: free some space or use a larger volume")


def size_text(n: int) -> str:
    """Bytes for a person: never "0.00 GB" for a few megabytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} bytes"


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free
