"""Training options shared by `train` and `chain`, each readable from a CATSDOGS_* variable (the ConfigMap's)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from shared.runs import MAX_EPOCHS  # noqa: F401 (the bound of --epochs, here with the others)


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


# Upper bounds (README, "What happens when things go wrong"): a batch of 4096 180px images is 1.6 GB of
# float32 before the first layer; VGG16 at 512px and a batch of 32 needs about 20 GB of activations.
MAX_BATCH, MAX_IMAGE_SIZE = 4096, 512

BatchSize = Annotated[int, typer.Option(min=1, max=MAX_BATCH, envvar="CATSDOGS_BATCH_SIZE", help="Batch size.")]
ImageSize = Annotated[int | None, typer.Option(
    min=8, max=MAX_IMAGE_SIZE, envvar="CATSDOGS_IMAGE_SIZE", help="Square image side (default: 180).")]
Seed = Annotated[int, typer.Option(
    min=0, max=2**32 - 1, envvar="CATSDOGS_SEED", help="Seed of every random number generator.")]
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
