"""Random seeds: the one default, their bounds, and the one parser of a list of them."""

from __future__ import annotations

from shared.core.errors import UsageError
from shared.core.numbers import parse_number

DEFAULT_SEED = 1337  # the seed code's (../shared/seed); a run of another seed sits beside it
SEED_BOUNDS = (0, 2**32 - 1)  # what numpy's and TensorFlow's generators accept


def parse_seeds(text: str, *, source: str = "--seeds") -> tuple[int, ...]:
    """"1337,1,2" or "1337 1 2": distinct seeds within SEED_BOUNDS, in the order given.

    The one parser of seed lists: `catsdogs chapter --seeds`, CATSDOGS_SEEDS of the chain and of the
    renderer of the Kubernetes manifests all come through here.
    """
    low, high = SEED_BOUNDS
    items = text.replace(",", " ").split()
    if not items:
        raise UsageError(f"{source} is empty: expected seeds such as {DEFAULT_SEED},1,2")
    seeds: list[int] = []
    for item in items:
        try:
            seed = parse_number(item, name=source, low=low, high=high)
        except UsageError:
            raise UsageError(f"{source}={text!r}: {item!r} is not a seed ({low} to {high})") from None
        if seed in seeds:
            raise UsageError(f"{source}={text!r}: seed {item} twice")
        seeds.append(seed)
    return tuple(seeds)
