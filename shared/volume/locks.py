"""Exclusive locks on the shared volume, for work two pods (or two shells) could otherwise do at once.

flock(2) on a file under <volume>/.locks/: the kernel drops it when its holder dies, however it dies,
so a killed pod never leaves a stale lock (on NFS, when the client's lease ends). The file holds who
has it, for the message the next one reads.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shared.core.errors import RetryableError
from shared.core.numbers import parse_number

POLL_S = 0.2


WAIT_ENV = "CATSDOGS_LOCK_WAIT"  # seconds a stage waits for data another stage reads or replaces
DEFAULT_WAIT_S = 300.0


def data_wait_s() -> float:
    text = os.environ.get(WAIT_ENV, "").strip()  # checked by the stage before it starts (jobs/_options.py)
    return float(parse_number(text, name=WAIT_ENV, low=0, whole=False)) if text else DEFAULT_WAIT_S


@contextlib.contextmanager
def exclusive(folder: Path, name: str, *, what: str, wait_s: float | None = 0.0, busy: str | None = None,
              shared: bool = False) -> Iterator[None]:
    """Hold lock `name` in `folder` (exclusive, or `shared` with other readers); after `wait_s` seconds
    (None: no limit) give up with a RetryableError naming a holder: `busy`, else "{what} is already running"."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        if not (shared and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)):
            raise
        fd = None
    if fd is None:  # a reader of a volume it cannot write (predict on a read-only mount): nobody replaces it
        yield
        return
    try:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
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
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def keras_download_lock() -> contextlib.AbstractContextManager[None]:
    """Around Keras's downloads into KERAS_HOME (it writes the final file in place): one downloader at a time."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return exclusive(home, "download", what="a download into KERAS_HOME", wait_s=None)
