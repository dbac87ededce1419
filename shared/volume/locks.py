"""Exclusive locks on the shared volume, for work two pods (or two shells) could otherwise do at once.

flock(2) on a file under <volume>/.locks/: the kernel drops it when its holder dies, however it dies,
so a killed pod never leaves a stale lock (on NFS, when the client's lease ends). The file holds who
has it, for the message the next one reads.

The lock file is opened without following links (the folder and the file), and must be a regular file
with one name: a symlink or a hard link planted there would otherwise have the note written into (and
truncate) whatever it points to. A lock file deleted while held would let a second holder in with a new
file; `check_held` tells a long holder (a training run, at every epoch's end) that this happened.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shared.core.errors import PermanentError, RetryableError
from shared.core.numbers import parse_number

POLL_S = 0.2


WAIT_ENV = "CATSDOGS_LOCK_WAIT"  # seconds a stage waits for data another stage reads or replaces
DEFAULT_WAIT_S = 300.0


def data_wait_s() -> float:
    text = os.environ.get(WAIT_ENV, "").strip()  # checked by the stage before it starts (jobs/_options.py)
    return float(parse_number(text, name=WAIT_ENV, low=0, whole=False)) if text else DEFAULT_WAIT_S


_HELD: dict[tuple[str, str], int] = {}  # (folder, name) -> the inode this process holds


def _open_folder(folder: Path) -> int:
    """The lock folder, created if missing, opened without following a link at its own name."""
    with contextlib.suppress(FileExistsError):  # a dangling link, or a file, where the folder should be
        folder.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PermanentError(f"{folder} is a link or not a folder: locks live in a real folder of the "
                                 f"volume; remove it (rm {folder}) and run again") from None
        raise


def _open_lock(dir_fd: int, folder: Path, name: str) -> int:
    path = folder / f"{name}.lock"
    try:
        fd = os.open(f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise PermanentError(f"{path} is a symbolic link, not a lock file: remove it (rm {path}) and run "
                                 "again") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise PermanentError(f"{path} is not a lock file catsdogs made (a hard link to another file, or not a "
                             f"file): remove it (rm {path}) and run again")
    return fd


def _same_file(dir_fd: int, name: str, fd: int) -> bool:
    try:
        here = os.stat(f"{name}.lock", dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def lock_problem(folder: Path, error: OSError) -> PermanentError:
    """A lock this user may not create: the volume belongs to another user (first used as root, then as
    uid 10001) or is read-only; which folder, and how to fix its owner."""
    try:
        owner = f"uid {folder.stat().st_uid}" if folder.exists() else "another user"
    except OSError:
        owner = "another user"
    return PermanentError(f"cannot take a lock in {folder} ({error.strerror}; it belongs to {owner}, this is uid "
                          f"{os.getuid()}): make the volume this user's, e.g. `chown -R {os.getuid()}:{os.getgid()} "
                          f"{folder.parent}` as its owner or root")


@contextlib.contextmanager
def exclusive(folder: Path, name: str, *, what: str, wait_s: float | None = 0.0, busy: str | None = None,
              shared: bool = False) -> Iterator[None]:
    """Hold lock `name` in `folder` (exclusive, or `shared` with other readers); after `wait_s` seconds
    (None: no limit) give up with a RetryableError naming a holder: `busy`, else "{what} is already running".

    A reader on a read-only mount (EROFS) reads unlocked: nothing can replace the data under that mount
    from this side. A lock this user is not allowed to create is a PermanentError (exit 3) for readers and
    writers alike: reading unlocked could read a model while another pod replaces it."""
    dir_fd, fd = None, None
    try:
        try:
            dir_fd = _open_folder(folder)
            fd = _open_lock(dir_fd, folder, name)
        except OSError as e:
            if shared and e.errno == errno.EROFS:
                yield
                return
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise lock_problem(folder, e) from None
            raise
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                if _same_file(dir_fd, name, fd):
                    break
                # deleted (or replaced) between our open and our lock: the lock that counts is the new file's
                os.close(fd)
                fd = _open_lock(dir_fd, folder, name)
                continue
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
                    raise RetryableError(f"{busy or what + ' is already running on this volume'} ({holder}): "
                                         "try again when it has finished") from None
                time.sleep(POLL_S)
        note = f"pid {os.getpid()} on {socket.gethostname()} since " \
               f"{datetime.now(UTC).isoformat(timespec='seconds')}" + (f", {what}" if busy else "")
        os.ftruncate(fd, 0)  # readers overwrite each other's note: the message names one of them
        os.pwrite(fd, note.encode(), 0)
        _HELD[str(folder), name] = os.fstat(fd).st_ino
        try:
            yield
        finally:
            _HELD.pop((str(folder), name), None)
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock
        if dir_fd is not None:
            os.close(dir_fd)


def check_held(folder: Path, name: str) -> None:
    """Raise a RetryableError if the lock file this process holds as `name` was deleted or replaced: another
    process may then hold a new one for the same work (README, "Concurrency")."""
    inode = _HELD.get((str(folder), name))
    if inode is None:
        return
    try:
        here = os.stat(folder / f"{name}.lock", follow_symlinks=False).st_ino
    except FileNotFoundError:
        here = None
    if here != inode:
        raise RetryableError(f"{folder / (name + '.lock')} was deleted while this process held it: another "
                             "process may be doing the same work now; stopped at a safe point, run again")


def keras_download_lock() -> contextlib.AbstractContextManager[None]:
    """Around Keras's downloads into KERAS_HOME (it writes the final file in place): one downloader at a time."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return exclusive(home, "download", what="a download into KERAS_HOME", wait_s=None)
