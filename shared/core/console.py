"""Every line and table a stage prints: progress (a rich bar on a terminal, a few plain lines in container
logs) and tables. User text (paths, model names, error messages) is never read as rich markup: a path
with `[/` in it is printed as it is, where markup would raise MarkupError (exit 70)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

Advance = Callable[[int], None]


def is_terminal() -> bool:
    return sys.stdout.isatty()


def say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def progress(description: str, total: int | None, *, unit: str = "files") -> Iterator[Advance]:
    """Yield `advance(n)`; report `description` as work proceeds."""
    if is_terminal():
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), count,
                      TimeRemainingColumn(), transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
        return

    done = 0
    next_tenth = 1

    def advance(n: int = 1) -> None:
        nonlocal done, next_tenth
        done += n
        if total and done * 10 >= next_tenth * total:
            say(f"{description}: {done}/{total} {unit} ({done * 100 // total}%)")
            next_tenth = done * 10 // total + 1

    say(f"{description}: started" + (f", {total} {unit}" if total else ""))
    yield advance
    if not total:
        say(f"{description}: done, {done} {unit}")


def print_table(*, title: str, columns: list[str], rows: list[list[str]], width: int = 120,
                left: tuple[str, ...] = (), header: bool = True) -> None:
    """A table on stdout; every title, header and cell is plain text (rich.text.Text), never markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), show_header=header)
    for name in columns:
        table.add_column(Text(name), justify="left" if name in left or not header else "right")
    for cells in rows:
        table.add_row(*(Text(str(c)) for c in cells))
    Console(width=width, markup=False, highlight=False).print(table)


VERBOSE_ENV = "CATSDOGS_VERBOSE"


def verbose() -> bool:
    """`--verbose` was given (CATSDOGS_VERBOSE=1): say more, and leave native logs on stderr."""
    return os.environ.get(VERBOSE_ENV, "").strip() in ("1", "yes", "true")


def native_log_path() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"catsdogs-{os.getuid()}" / "native.log"


def native_stderr_to_log() -> Path | None:
    """Send what native code (TensorFlow's C++, CUDA's stubs) writes to file descriptor 2 into a log file,
    while Python's own stderr (our error lines, tracebacks, warnings) stays where it was.

    TensorFlow logs oneDNN notices, 'Could not find cuda drivers' and an `E0000 ... cuInit` line on every
    CPU machine, some before TF_CPP_MIN_LOG_LEVEL is read: a user's first sight of a healthy run was an
    error. `--verbose` (CATSDOGS_VERBOSE=1) leaves them on stderr. Returns the log's path, or None where
    nothing was redirected (verbose, or no writable temporary folder)."""
    if verbose():
        return None
    try:
        path = native_log_path()
        path.parent.mkdir(mode=0o700, exist_ok=True)
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.getuid():
            return None  # someone else's (or a link) in a shared /tmp: keep stderr as it is
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:  # no writable temporary folder: require_temp_dir says so, in the stage
        return None
    sys.stderr.flush()
    python_stderr = os.dup(2)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = open(python_stderr, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",  # noqa: SIM115
                      errors="backslashreplace", closefd=True)
    return path
