"""What to run to fix something, written where the user is: a make target or the stage's command line."""

from __future__ import annotations

import os

from shared.core.seeds import DEFAULT_SEED


def run_hint(cli: str, make: str) -> str:
    """The command that fixes it, where the user is: the make target under make (which sets MAKELEVEL),
    else the stage's own command line (a container has no make: `docker run IMAGE train ...`)."""
    return f"`{make}`" if os.environ.get("MAKELEVEL") else f"`catsdogs {cli}`"


def train_hint(model: str, *, force: bool = False, seed: int | None = None, **options: object) -> str:
    """How to train `model` (its prerequisite too), or with force=True to retrain it; `seed` if not the default;
    `options` such as image_size=96 as `--image-size 96` or `IMAGE_SIZE=96`."""
    option = "--force" if force else "--with-prerequisite"
    seeded = seed is not None and seed != DEFAULT_SEED
    cli = "".join(f" --{k.replace('_', '-')} {v}" for k, v in options.items())
    make = "".join(f" {k.upper()}={v}" for k, v in options.items())
    return run_hint(f"train --model {model} {option}" + (f" --seed {seed}" if seeded else "") + cli,
                    f"make train-{model}" + (" FORCE=1" if force else "") + (f" SEED={seed}" if seeded else "") + make)
