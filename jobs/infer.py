"""Infer: score a big unlabeled set with a trained model (default: the volume's test1, Kaggle's), sharded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import BatchSize, Precision, bounded
from jobs.predict import _plain
from shared.core.errors import EXIT_PERMANENT, UsageError
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import ModelName, help_text

app = new_app(__doc__)


@app.command("infer", help=__doc__)
@stage
def main(
    model: Annotated[ModelName, typer.Option(envvar="CATSDOGS_INFER_MODEL",
                                             help=f"Which trained model: {help_text()}.")],
    inputs: Annotated[list[Path] | None, typer.Argument(
        help="Image files or folders (default: the volume's test1).", show_default=False)] = None,
    data: DataDir = None,
    seed: Annotated[int, bounded("seed", envvar="CATSDOGS_INFER_SEED", help="Which run of the model.")] = DEFAULT_SEED,
    batch_size: BatchSize = 32,
    job_completions: Annotated[int | None, bounded(
        "index", envvar="CATSDOGS_JOB_COMPLETIONS", help="The Job's completions, checked against --shards.",
        show_default=False)] = None,
    shard: Annotated[int, bounded("index", envvar="JOB_COMPLETION_INDEX",
                                  help="This process's shard (Kubernetes: JOB_COMPLETION_INDEX).")] = 0,
    shards: Annotated[int, bounded("shards", envvar="CATSDOGS_INFER_SHARDS", help="How many shards in all.")] = 1,
    precision: Annotated[Precision, typer.Option(
        envvar="CATSDOGS_INFER_PRECISION",
        help="What the model computes in: float32 (default, whatever it trained in), a mixed policy, or auto "
             "(bfloat16 where the hardware runs it natively; make bench shows the speed and the largest "
             "difference in p_dog it costs).")] = Precision.float32,
    skip_unreadable: Annotated[bool, typer.Option(
        "--skip-unreadable", help="Give files that are no image p_dog 0.5 (label 0) instead of exiting 3.")] = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.serving.infer import InferConfig, check_shards, infer

    check_shards(shard, shards)
    if job_completions is not None and job_completions != shards:
        raise UsageError(f"the Job has {job_completions} completions but CATSDOGS_INFER_SHARDS is {shards}: render "
                         "it with `make k8s-infer`, which sets both")
    result = infer(config=InferConfig(data_dir=root, model=model, seed=seed, inputs=tuple(inputs or ()),
                                      batch_size=batch_size, shard=shard, shards=shards,
                                      skip_unreadable=skip_unreadable, precision=precision.value))
    for name in result.unreadable:
        print(f"cannot score {_plain(Path(name))}: not a readable image", file=sys.stderr)
    if result.unreadable and skip_unreadable:
        print(f"infer: {len(result.unreadable)} unreadable files got p_dog 0.5, label 0 (listed in "
              f"{result.folder / 'unreadable.txt'})", file=sys.stderr)
    elif result.unreadable:
        print(f"error: {len(result.unreadable)} files could not be scored (listed in "
              f"{result.folder / 'unreadable.txt'}); --skip-unreadable gives them p_dog 0.5", file=sys.stderr)
        raise typer.Exit(EXIT_PERMANENT)


if __name__ == "__main__":
    run(app)
