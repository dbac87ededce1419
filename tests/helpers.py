"""What several tests do the same way."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.volume.fsutil import read_json
from shared.volume.layout import Volume


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


def jobs(vol: Volume, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_", "JOB_"))}
    return subprocess.run([sys.executable, "-m", "jobs", *args, "--data-dir", str(vol.root)], capture_output=True,
                          text=True, env={**env, "PYTHONUNBUFFERED": "1"}, timeout=600, stdin=subprocess.DEVNULL, **kw)


def one_error(result: subprocess.CompletedProcess, code: int) -> str:
    """The run's single `error:` line, checked to be its last line, with the expected exit code."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert result.returncode == code and len(errors) == 1 and lines[-1] == errors[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    return errors[0]
