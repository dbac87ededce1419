"""The one parser of numbers typed by a user: options, CATSDOGS_* variables, K8S_SET values, folder names.

ASCII digits only. Python's int() also reads '٣' (Arabic-Indic three) and str.isdigit() accepts '²', so a
number that reaches int() unchecked can be one nobody typed, or an exception nobody expected (exit 70).
"""

from __future__ import annotations

import math
import re

from shared.core.errors import UsageError

_WHOLE = re.compile(r"-?[0-9]+")  # [0-9], not \d: \d matches every script's digits
_REAL = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


def range_text(low: float | None, high: float | None) -> str:
    if high is None:
        return f"at least {low:g}"
    return f"{low:g} to {high:g}" if low is not None else f"at most {high:g}"


def parse_number(text: str, *, name: str, low: float | None = None, high: float | None = None,
                 whole: bool = True) -> int | float:
    """`text` as an int (whole) or a finite float within [low, high], or a UsageError naming `name`."""
    stripped = text.strip()
    if not (_WHOLE if whole else _REAL).fullmatch(stripped):
        raise UsageError(f"{name}={text!r}: expected a {'whole ' if whole else ''}number (digits 0-9)")
    value = int(stripped) if whole else float(stripped)
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise UsageError(f"{name}={stripped}: expected {range_text(low, high)}")
    return value


def parse_number_list(text: str, *, name: str, what: str, low: float | None = None, high: float | None = None,
                      example: str = "1,2") -> tuple[int, ...]:
    """"1,2,3" or "1 2 3": distinct whole numbers within [low, high], in the order given (seeds, sizes)."""
    items = text.replace(",", " ").split()
    if not items:
        raise UsageError(f"{name} is empty: expected {what}s such as {example}")
    out: list[int] = []
    for item in items:
        try:
            value = int(parse_number(item, name=name, low=low, high=high))
        except UsageError:
            raise UsageError(f"{name}={text!r}: {item!r} is not a {what} ({range_text(low, high)})") from None
        if value in out:
            raise UsageError(f"{name}={text!r}: {what} {item} twice")
        out.append(value)
    return tuple(out)
