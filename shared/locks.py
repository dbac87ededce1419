"""Exclusive locks on the shared volume, for work two pods (or two shells) could otherwise do at once.

flock(2) on a file under <volume>/.locks/: the kernel drops it when its holder dies, however it dies,
so a killed pod never leaves a stale lock (on NFS, when the client's lease ends). The file holds who
has it, for the message the next one reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shared.errors import RetryableError

POLL_S = 0.2


@contextlib.contextmanager
def exclusive(folder: Path, name: str, *, what: str, wait_s: float | None = 0.0) -> Iterator[None]:
    """Hold lock `name` in `folder`; after `wait_s` seconds (None: no limit) give up with a RetryableError."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                    raise RetryableError(f"{what} is already running on this volume ({holder}): "
                                         "try again when it has finished") from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def keras_download_lock() -> contextlib.AbstractContextManager[None]:
    """Around Keras's downloads into KERAS_HOME (it writes the final file in place): one downloader at a time."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return exclusive(home, "download", what="a download into KERAS_HOME", wait_s=None)
