"""The five models, each described once: the seed's numbers, what it starts from, how it trains.

No TensorFlow here (the builders import it when called): `--help`, evaluate, the Makefile's help and
the GPU check read this module, and `python3 -m shared.training.catalog` works without the virtual environment.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shared.training import models


class ModelName(str, Enum):
    scratch = "scratch"
    scratch_augmented = "scratch-augmented"
    feature_extraction = "feature-extraction"
    feature_extraction_augmented = "feature-extraction-augmented"
    fine_tune = "fine-tune"


@dataclass(frozen=True)
class ModelSpec:
    name: ModelName
    summary: str  # one line, for --help and `make help`
    epochs: int  # the seed's
    book_accuracy: float  # what the seed reports on the test subset
    book_text: str  # ... and how it words it
    builder: Callable[..., object]
    starts_from: ModelName | None = None  # trained from that model's model.keras
    freeze: Callable[[object], None] | None = None  # what it does to that model's trainable flags
    on_features: bool = False  # trains a head on stored VGG16 features instead of on images
    uses_vgg16: bool = False

    @property
    def min_image_size(self) -> int:
        """The smallest square side the architecture accepts (no layer may shrink a map below 1 pixel)."""
        return models.VGG16_MIN_SIZE if self.uses_vgg16 else models.SCRATCH_MIN_SIZE

    @property
    def make_target(self) -> str:
        return f"train-{self.name.value}"

    def build(self, **available):
        """The builder, given those of `available` it takes: each builder names exactly what it needs."""
        wanted = inspect.signature(self.builder).parameters
        return self.builder(**{k: v for k, v in available.items() if k in wanted})


SPECS: dict[ModelName, ModelSpec] = {s.name: s for s in (
    ModelSpec(ModelName.scratch, "the convnet from scratch: 5 Conv2D + 4 MaxPooling2D", 30, 0.695, "69.5%",
              models.build_scratch),
    ModelSpec(ModelName.scratch_augmented, "the same with data augmentation and Dropout(0.5)", 100, 0.835,
              "83.5%", models.build_scratch_augmented),
    ModelSpec(ModelName.feature_extraction, "a classifier on VGG16 features computed once and stored", 20, 0.97,
              "~97% (validation)", models.build_feature_extraction, on_features=True, uses_vgg16=True),
    ModelSpec(ModelName.feature_extraction_augmented, "frozen VGG16 inside the model, augmentation in front", 50,
              0.975, "97.5%", models.build_feature_extraction_augmented, uses_vgg16=True),
    ModelSpec(ModelName.fine_tune, "the previous model with VGG16's last 4 layers unfrozen, RMSprop(1e-5)", 30,
              0.985, "98.5%", models.build_fine_tune, starts_from=ModelName.feature_extraction_augmented,
              freeze=models.unfreeze_top, uses_vgg16=True),
)}


def spec(name: ModelName | str) -> ModelSpec:
    return SPECS[ModelName(name)]


def help_text() -> str:
    return "; ".join(f"{s.name.value} ({s.epochs} epochs)" for s in SPECS.values())


def main(argv: list[str]) -> int:
    """`names`: one per line, for shell scripts; `make-help`: the train targets' lines of `make help`."""
    command = argv[0] if argv else "names"
    for s in SPECS.values():
        if command == "names":
            print(s.name.value)
        elif command == "make-help":
            start = f"; trains {s.starts_from.value} first if missing" if s.starts_from else ""
            print(f"  \033[36m{s.make_target:<34}\033[0m Train {s.summary} (EPOCHS={s.epochs}{start})")
        else:
            print("usage: python3 -m shared.training.catalog [names|make-help]", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
