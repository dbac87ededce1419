"""`python -m jobs` and the `catsdogs` console script: every stage as a sub-command."""

from __future__ import annotations

from jobs import (
    chain,
    describe,
    doctor,
    evaluate,
    explain,
    export,
    fetch,
    infer,
    learning_curve,
    mnist,
    predict,
    serve,
    split,
    train,
)
from jobs._cli import new_app, run

app = new_app("catsdogs: chapter 8 of Deep Learning with Python (Dogs vs. Cats) as batch jobs.")
STAGES = (fetch, split, train, describe, evaluate, predict, explain, learning_curve, export, serve, infer, doctor,
          mnist, chain)
for module in STAGES:
    app.add_typer(module.app)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
