"""Every line and table a stage prints: progress (a rich bar on a terminal, a few plain lines in container
logs) and tables. User text (paths, model names, error messages) is never read as rich markup: a path
with `[/` in it is printed as it is, where markup would raise MarkupError (exit 70)."""

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
