"""Numbers with their spread: a run's sampling error, several runs' spread, and where the book's number falls.

A single test accuracy near 70% on 2,000 images carries about +-2 points of sampling error alone; seeds add
training's own variation. Neither the seed nor the book reports either.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

Z95 = 1.959963984540054  # the normal quantile of 0.975: a two-sided 95% interval


def wilson(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927): unlike the normal approximation it stays in
    [0, 1] and keeps its coverage near 0% and 100%, which a good model's accuracy approaches."""
    if n <= 0:
        raise ValueError("an interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} trials")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    sd: float | None  # the sample standard deviation (n - 1); None for a single run
    low: float
    high: float


def spread(values: list[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    return Spread(n=len(values), mean=statistics.fmean(values),
                  sd=statistics.stdev(values) if len(values) > 1 else None, low=min(values), high=max(values))


def mark(reference: float | None, low: float, high: float) -> str | None:
    """Where `reference` (the book's number) falls against the runs' range: inside, below or above."""
    if reference is None:
        return None
    if reference < low:
        return "below"
    if reference > high:
        return "above"
    return "inside"


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def mean_sd_text(s: Spread, *, percent: bool = True) -> str:
    """"72.1% ± 1.3" (the sd in points), or "72.1%" with n = 1; "0.512 ± 0.020" for other numbers."""
    if percent:
        return pct(s.mean) + ("" if s.sd is None else f" ± {100 * s.sd:.1f}")
    return f"{s.mean:.3f}" + ("" if s.sd is None else f" ± {s.sd:.3f}")
