"""Random seeds: the one default, their bounds, and the one parser of a list of them."""

from __future__ import annotations

from shared.core.numbers import parse_number_list

DEFAULT_SEED = 1337  # the seed code's (../shared/seed); a run of another seed sits beside it
SEED_BOUNDS = (0, 2**32 - 1)  # what numpy's and TensorFlow's generators accept


def parse_seeds(text: str, *, source: str = "--seeds") -> tuple[int, ...]:
    """"1337,1,2" or "1337 1 2": distinct seeds within SEED_BOUNDS, in the order given.

    The one parser of seed lists: `catsdogs chapter --seeds`, CATSDOGS_SEEDS of the chain and of the
    renderer of the Kubernetes manifests all come through here.
    """
    low, high = SEED_BOUNDS
    return parse_number_list(text, name=source, what="seed", low=low, high=high, example=f"{DEFAULT_SEED},1,2")
