"""Training options shared by `train` and `chain`, each readable from a CATSDOGS_* variable (the ConfigMap's)."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated

import typer

from shared.core.errors import UsageError
from shared.core.numbers import parse_number, range_text
from shared.core.seeds import SEED_BOUNDS, parse_seeds
from shared.data.fetch import KAGGLE_PER_CLASS
from shared.training.catalog import SPECS
from shared.training.runs import MAX_EPOCHS


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


# Every bound of every option and CATSDOGS_* variable, in one place (README, "What happens when things go
# wrong"). Click checks the options before a stage starts; check_environment() the variables that are read
# below Click, also before any work. A batch of 4096 180px images is 1.6 GB of float32 before the first
# layer; VGG16 at 512px and a batch of 32 needs about 20 GB of activations.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "epochs": (1, MAX_EPOCHS),
    "batch_size": (1, 4096),
    "image_size": (8, 512),
    "seed": SEED_BOUNDS,
    "per_class": (1, KAGGLE_PER_CLASS),
    "subset_size": (1, KAGGLE_PER_CLASS),
    "retries": (0, 20),
    "wait_seconds": (0, 7 * 86400),
    "index": (0, None),
    "mnist_samples": (10, 600_000),
    "mnist_epochs": (1, 1000),
    "mnist_batch_size": (1, 65536),
    "logical_cpus": (0, 64),
    "port": (1, 65535),
    "shards": (1, 10_000),  # shared/deploy/settings.py's MAX_SHARDS
}
MAX_BATCH, MAX_IMAGE_SIZE = BOUNDS["batch_size"][1], BOUNDS["image_size"][1]
# Variables read below Click, and the bound each must keep.
ENV_BOUNDS = {"CATSDOGS_LOCK_WAIT": "wait_seconds", "CATSDOGS_LOGICAL_CPUS": "logical_cpus",
              **{s.epochs_variable: "epochs" for s in SPECS.values()}}


FRACTIONAL = {"wait_seconds"}  # every other bound is of a whole number


def bounded(name: str, *param_decls: str, **kwargs) -> typer.models.OptionInfo:
    """typer.Option with the bounds of BOUNDS[name], read by the one number parser (ASCII digits only)."""
    low, high = BOUNDS[name]
    whole = name not in FRACTIONAL

    def parse(text: str) -> int | float:
        try:
            return parse_number(str(text), name="value", low=low, high=high, whole=whole)
        except UsageError as e:
            raise typer.BadParameter(str(e).removeprefix("value=")) from None

    help_text = kwargs.pop("help", "")
    return typer.Option(*param_decls, parser=parse, metavar="INTEGER" if whole else "NUMBER",
                        help=f"{help_text} [{range_text(low, high)}]".strip(), **kwargs)


def check_environment(environ=os.environ) -> None:
    """The CATSDOGS_* variables that Click does not parse, each a number within its bound (exit 2 if not)."""
    for var, name in ENV_BOUNDS.items():
        text = environ.get(var, "").strip()
        if not text:
            continue
        low, high = BOUNDS[name]
        parse_number(text, name=var, low=low, high=high, whole=name not in FRACTIONAL)
    if environ.get("CATSDOGS_SEEDS", "").strip():
        parse_seeds(environ["CATSDOGS_SEEDS"], source="CATSDOGS_SEEDS")


BatchSize = Annotated[int, bounded("batch_size", envvar="CATSDOGS_BATCH_SIZE", help="Batch size.")]
ImageSize = Annotated[int | None, bounded(
    "image_size", envvar="CATSDOGS_IMAGE_SIZE", help="Square image side (default: 180).")]
Seed = Annotated[int, bounded(
    "seed", envvar="CATSDOGS_SEED", help="Seed of every random number generator; each seed is its own run "
    "(models/<model>/seed-<S>/).")]
Weights = Annotated[str, typer.Option(
    envvar="CATSDOGS_WEIGHTS", help="VGG16 weights: imagenet, none, or a weights file.")]
PrecisionOption = Annotated[Precision, typer.Option(
    envvar="CATSDOGS_PRECISION",
    help="float32 (the seed's), a mixed policy, or auto: what the hardware runs natively (bfloat16 on a CPU "
         "with AVX512_BF16/AMX or a GPU of compute capability 8.0+, float16 on older GPUs, else float32).")]


class Strategy(str, Enum):
    auto = "auto"
    single = "single"
    mirrored = "mirrored"


StrategyOption = Annotated[Strategy, typer.Option(
    envvar="CATSDOGS_STRATEGY",
    help="auto: every GPU of the node (MirroredStrategy) when there are several; single: one device; "
         "mirrored: always. --batch-size stays the global batch.")]
RequireGpu = Annotated[bool, typer.Option(
    "--require-gpu", envvar="CATSDOGS_REQUIRE_GPU",
    help="Exit 3 at once if TensorFlow sees no GPU, instead of training on the CPU.")]
