"""Evaluate: score trained models on the test subset; write reports and a summary beside the book's numbers."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import BatchSize, bounded
from shared.training.catalog import ModelName
from shared.volume.layout import Volume

app = new_app(__doc__)
Target = Enum("Target", {"all": "all", **{m.name: m.value for m in ModelName}}, type=str)


@app.command("evaluate", help=__doc__)
@stage
def main(
    model: Annotated[Target, typer.Option(help="A trained model, or all of them.")] = Target.all,
    data: DataDir = None,
    batch_size: BatchSize = 32,
    force: Annotated[bool, typer.Option("--force", help="Score again even if the report is current.")] = False,
    seed: Annotated[int | None, bounded(
        "seed", help="Only this seed's run (default: every trained seed).", show_default=False)] = None,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.orchestration.reporting import EvaluateConfig, evaluate
    from shared.reports.summary import print_table

    rows = evaluate(config=EvaluateConfig(data_dir=root, model=model.value, batch_size=batch_size, force=force,
                                          seed=seed))
    print_table(rows)
    print(f"report: {Volume(root).reports / 'summary.md'} and {Volume(root).reports / 'index.html'}")


if __name__ == "__main__":
    run(app)
