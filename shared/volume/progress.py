"""Progress: a rich bar on a terminal, a few plain lines in container logs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

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
            TimeRemainingColumn,
        )

        count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        with Progress("[progress.description]{task.description}", BarColumn(), count,
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
