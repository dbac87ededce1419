"""The chapter's models, each described once: the seed's numbers, what it starts from, how it trains.

The one list of models: the CLI's choices and help, `make help` and the train-* targets, the chains and
the Kubernetes index mapping, the manifests' counts and keys, the summary's and the page's rows, and the
tests' parametrisation all derive from SPECS (README, "Adding a model").

No TensorFlow here (the builders import it when called): `--help`, evaluate, the Makefile's help and
the GPU check read this module, and `python3 -m shared.training.catalog` works without the virtual environment.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from shared.core.errors import UsageError
from shared.training import models


@dataclass(frozen=True)
class ModelSpec:
    name: ModelName  # written as a string in the entries below; the catalog makes it a ModelName
    summary: str  # one line, for --help and `make help`
    epochs: int  # the seed's
    book_accuracy: float | None  # what the book reports on the test subset; None: it reports none
    book_text: str  # ... and how it words it ("" with None)
    builder: Callable[..., object]
    starts_from: ModelName | None = None  # trained from that model's model.keras (an entry above this one)
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

    @property
    def epochs_variable(self) -> str:
        """Its epochs in the environment (the ConfigMap's key): CATSDOGS_EPOCHS_FINE_TUNE for fine-tune."""
        return "CATSDOGS_EPOCHS_" + self.name.value.upper().replace("-", "_")

    def build(self, **available):
        """The builder, given those of `available` it takes: each builder names exactly what it needs."""
        wanted = inspect.signature(self.builder).parameters
        return self.builder(**{k: v for k, v in available.items() if k in wanted})


_ENTRIES = (
    ModelSpec("scratch", "the convnet from scratch: 5 Conv2D + 4 MaxPooling2D", 30, 0.695, "69.5%",
              models.build_scratch),
    ModelSpec("scratch-augmented", "the same with data augmentation and Dropout(0.5)", 100, 0.835,
              "83.5%", models.build_scratch_augmented),
    ModelSpec("feature-extraction", "a classifier on VGG16 features computed once and stored", 20, 0.97,
              "~97% (validation)", models.build_feature_extraction, on_features=True, uses_vgg16=True),
    ModelSpec("feature-extraction-augmented", "frozen VGG16 inside the model, augmentation in front", 50,
              0.975, "97.5%", models.build_feature_extraction_augmented, uses_vgg16=True),
    ModelSpec("fine-tune", "the previous model with VGG16's last 4 layers unfrozen, RMSprop(1e-5)", 30,
              0.985, "98.5%", models.build_fine_tune, starts_from="feature-extraction-augmented",
              freeze=models.unfreeze_top, uses_vgg16=True),
    # New models go above this line (README, "Adding a model").
)


NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # a make target, a CLI choice, a DNS-safe label


def _catalog(entries: tuple[ModelSpec, ...]) -> tuple[type[Enum], dict]:
    """The ModelName enum and SPECS from the entries, refusing what would break something downstream."""
    names: list[str] = []
    for entry in entries:
        if not NAME.fullmatch(entry.name):
            raise ValueError(f"catalog: model name {entry.name!r}: lowercase letters, digits and single hyphens")
        if entry.name in names:
            raise ValueError(f"catalog: {entry.name} twice")
        if entry.starts_from is not None and entry.starts_from not in names:
            raise ValueError(f"catalog: {entry.name} starts from {entry.starts_from}, which must be listed above it")
        names.append(entry.name)
    enum = Enum("ModelName", {n.replace("-", "_"): n for n in names}, type=str, module=__name__)
    specs = {enum(e.name): replace(e, name=enum(e.name), starts_from=None if e.starts_from is None
                                   else enum(e.starts_from)) for e in entries}
    return enum, specs


ModelName, SPECS = _catalog(_ENTRIES)


def spec(name: ModelName | str) -> ModelSpec:
    return SPECS[ModelName(name)]


def parse_models(text: str, *, source: str = "--models") -> tuple[ModelName, ...] | None:
    """'all' (None: every model) or a list of the catalog's names, separated by commas or spaces: the one parser
    of model lists (`catsdogs chain --models`, CATSDOGS_MODELS, `make k8s-render MODEL=`, `make learning-curve
    MODELS=`)."""
    if text.strip() == "all":
        return None
    chosen = []
    for item in text.replace(",", " ").split() or [""]:
        if item.strip() not in names():
            raise UsageError(f"{source} {text}: expected 'all' or names from {', '.join(names())}")
        if ModelName(item.strip()) not in chosen:
            chosen.append(ModelName(item.strip()))
    return tuple(chosen)


def names() -> list[str]:
    return [s.name.value for s in SPECS.values()]


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
