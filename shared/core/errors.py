"""Errors carry the exit code Kubernetes acts on: 2 usage, 3 permanent, anything else retryable."""

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PERMANENT = 3
# EX_TEMPFAIL from sysexits.h: "try again later"; a Job's backoffLimit retries it.
EXIT_RETRYABLE = 75
# EX_SOFTWARE: a bug (an exception nobody expected). It is deterministic, so Kubernetes does not retry it.
EXIT_BUG = 70
# 128 + SIGTERM, what a shell reports for a process SIGTERM ended: stopped at a safe point; retried.
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM (Kubernetes' first word to a pod it stops), raised where Python next runs: a BaseException, so
    no `except Exception` swallows it, and every `finally` on the way out removes its staging."""


class CatsDogsError(Exception):
    """An expected failure: its message is one line for the user, its exit code a contract."""

    exit_code = 1


class UsageError(CatsDogsError):
    exit_code = EXIT_USAGE


class PermanentError(CatsDogsError):
    """Retrying cannot help: bad input, missing credentials, rules not accepted."""

    exit_code = EXIT_PERMANENT


class RetryableError(CatsDogsError):
    """A transient failure (network, server): the same command may succeed later."""

    exit_code = EXIT_RETRYABLE


def one_line(message: object, *, limit: int = 400) -> str:
    """The first meaningful line of a message (Keras's can run to a hundred lines), kept short."""
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[:limit - 3] + "..."
