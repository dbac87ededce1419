"""What every job shares: the data-dir option, and mapping errors to one stderr line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from shared.errors import EXIT_BUG, CatsDogsError
from shared.layout import DATA_DIR_ENV, Volume, resolve_data_dir

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar=DATA_DIR_ENV, show_default="./data",
                 help="Root of the shared data volume."),
]


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False,
                       no_args_is_help=False)


def data_dir(value: Path | None) -> Path:
    return resolve_data_dir(value)


def keras_home_on_volume(root: Path) -> None:
    """Before TensorFlow is imported (Keras reads it once): on the volume, a cluster downloads weights once."""
    os.environ.setdefault("KERAS_HOME", str(Volume(root).keras_home.resolve()))


def fail(message: str, code: int) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def stage(fn):
    """Run a stage body; expected errors become one line on stderr and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own exits and usage errors already carry their code
        except CatsDogsError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as e:  # a full disk, a lost volume: worth a retry
            raise fail(f"{e.strerror or e} ({e.filename or 'I/O'})", 1) from None
        except Exception as e:  # a bug: the whole traceback for whoever debugs it, then the one line
            traceback.print_exc()
            first = next((line for line in str(e).splitlines() if line.strip()), "")
            raise fail(f"unexpected {type(e).__name__}: {first} (a bug: please report it with the traceback "
                       "above)", EXIT_BUG) from None

    return wrapper
