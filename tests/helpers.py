"""What several tests do the same way."""

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

from shared.volume.fsutil import read_json


def kill_after_first_epoch(proc: subprocess.Popen, state: Path, *, timeout: float = 300,
                           sig: int = signal.SIGKILL, epochs: int = 1) -> int:
    """Send `sig` (SIGKILL) to a training process once its state file records `epochs` epochs; the epochs it
    finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):  # not written yet, or mid-rename
            if json.loads(state.read_text())["epoch"] >= epochs:
                break
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait()
    return read_json(state)["epoch"]
