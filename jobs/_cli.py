"""What every job shares: the data-dir option, the entry point, and mapping errors to one line and an exit code."""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated

import typer

from jobs._options import check_environment
from shared.core.console import VERBOSE_ENV, native_stderr_to_log
from shared.core.errors import (
    EXIT_BUG,
    EXIT_PERMANENT,
    EXIT_TERMINATED,
    CatsDogsError,
    PermanentError,
    Terminated,
    UsageError,
    one_line,
)
from shared.volume.layout import DATA_DIR_ENV, Volume, resolve_data_dir

# TensorFlow's C++ INFO and WARNING lines at import, before TensorFlow is imported; what remains is listed
# in the README ("What happens when things go wrong").
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # Typer >= 0.23 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer, with click installed beside it
    from click.exceptions import ClickException

DataDir = Annotated[
    str | None,  # not Path: Path("") is the current directory, and an empty --data-dir is a mistake
    typer.Option("--data-dir", envvar=DATA_DIR_ENV, show_default="./data",
                 help="Root of the shared data volume."),
]
# errno values retrying cannot fix: the path itself is wrong or forbidden.
PERMANENT_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                    errno.ELOOP, errno.EEXIST}


def new_app(help_text: str) -> typer.Typer:
    # Plain help: Typer's rich help prints every flag as "--force <bool>", which reads as if it took a value.
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False,
                       no_args_is_help=False, rich_markup_mode=None)


def _terminate(signum, frame) -> None:
    raise Terminated()


def run(app: typer.Typer) -> None:
    """The programs' entry point: Typer's, except that a usage error is one line on stderr (not a box).

    `--verbose`, anywhere on any stage's command line, keeps TensorFlow's native log on stderr (else it goes
    to a log file: shared/core/console.py, native_stderr_to_log)."""
    if "--verbose" in sys.argv[1:]:
        sys.argv.remove("--verbose")
        os.environ[VERBOSE_ENV] = "1"
    native_stderr_to_log()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(standalone_mode=False)
    except ClickException as e:
        where = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
        print(f"error: {one_line(e.format_message())}{where}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except Terminated:  # before a stage's body began (its own handler says more)
        print("error: terminated (SIGTERM)", file=sys.stderr, flush=True)
        sys.exit(EXIT_TERMINATED)
    sys.exit(code if isinstance(code, int) else 0)


def data_dir(value: str | None, *, writable: bool = True) -> Path:
    """The volume's root: created if missing; a file, an impossible or a read-only path is a permanent error."""
    if value is not None and not value.strip():
        raise UsageError("--data-dir is empty: name the volume's folder (or leave the option out for ./data)")
    root = resolve_data_dir(None if value is None else Path(value))
    if root.exists() and not root.is_dir():
        raise PermanentError(f"the data dir {root} is a file, not a folder (--data-dir or ${DATA_DIR_ENV})")
    if writable:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PermanentError(f"cannot create the data dir {root}: {e.strerror}") from None
        if not os.access(root, os.W_OK) or _read_only_fs(root):
            raise PermanentError(f"the data dir {root} is not writable (a read-only volume?)")
    return root


def _read_only_fs(path: Path) -> bool:
    """A read-only mount: root may pass os.access, but the filesystem still refuses."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def keras_home_on_volume(root: Path) -> None:
    """Before TensorFlow is imported (Keras reads it once): on the volume, a cluster downloads weights once."""
    os.environ.setdefault("KERAS_HOME", str(Volume(root).keras_home.resolve()))


def fail(message: str, code: int) -> typer.Exit:
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def require_temp_dir() -> None:
    """TensorFlow and matplotlib need a writable temporary folder from their first import. Docker's
    --read-only leaves none (podman and Kubernetes manifests add one): say which flag adds it, exit 3."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise PermanentError("no writable temporary folder (/tmp, $TMPDIR): with `docker run --read-only` add "
                             "`--tmpfs /tmp`; on Kubernetes mount an emptyDir at /tmp") from None


def stage(fn):
    """Run a stage body; expected errors become one line on stderr and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            require_temp_dir()
            check_environment()
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, ClickException):
            raise  # typer's own exits and usage errors already carry their code
        except CatsDogsError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Terminated:
            raise fail("terminated (SIGTERM): stopped, its temporary files removed; run the same command again "
                       "to go on (training resumes after its last finished epoch)", EXIT_TERMINATED) from None
        except OSError as e:  # a full disk, a lost volume: worth a retry; a forbidden path is not
            code = EXIT_PERMANENT if e.errno in PERMANENT_ERRNOS else 1
            raise fail(f"{e.strerror or e} ({e.filename or 'I/O'})", code) from None
        except Exception as e:  # a bug: the whole traceback for whoever debugs it, then the one line
            traceback.print_exc()
            raise fail(f"unexpected {type(e).__name__}: {one_line(str(e))} (a bug: please report it with the "
                       "traceback above)", EXIT_BUG) from None

    return wrapper
