"""The one way a stage opens a file by name on the volume: never through a link."""

from __future__ import annotations

import os


def no_follow(path: str, flags: int) -> int:
    """open()'s opener for what a stage writes or reads by name on the volume: a link planted at the name
    is refused (ELOOP), never followed out of the volume or into another file of it."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
