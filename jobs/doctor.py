"""Doctor: TensorFlow's CUDA/cuDNN build, visible GPUs, the volume, and which credentials are present."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage

app = new_app(__doc__)


@app.command("doctor", help=__doc__)
@stage
def main(
    data: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    require_gpu: Annotated[bool, typer.Option(
        "--require-gpu", envvar="CATSDOGS_REQUIRE_GPU", help="Exit 3 if TensorFlow sees no GPU.")] = False,
) -> None:
    root = data_dir(data, writable=False)
    keras_home_on_volume(root)
    from shared.core.errors import PermanentError
    from shared.training.doctor import diagnose, gpu_problem, volume_problem
    from shared.training.doctor import require_gpu as check_gpu

    report = diagnose(data_dir=root)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        from shared.core.console import print_table

        rows = [row for key, value in report.items()
                for row in ([[f"{key}: {sub}", _show(v)] for sub, v in value.items()] if isinstance(value, dict)
                            else [[key, _show(value)]])]
        print_table(title="catsdogs doctor", columns=["what", "value"], rows=rows, header=False)
    # A volume this user cannot write, or a GPU TensorFlow cannot use: what to fix, in one line.
    problem = volume_problem(report) or gpu_problem(report)
    if problem:
        raise PermanentError(problem)
    if require_gpu:
        check_gpu()


def _show(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(f"{v['name']} (compute capability {v['compute_capability']})" if isinstance(v, dict)
                         else str(v) for v in value) or "none"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    run(app)
