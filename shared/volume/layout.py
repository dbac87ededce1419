"""The one layout of the data volume. Every stage reads and writes only here."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from shared.core.seeds import DEFAULT_SEED

DATA_DIR_ENV = "CATSDOGS_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
CLASSES = ("cat", "dog")  # label 0 and 1, as image_dataset_from_directory orders them
SUBSETS = ("train", "validation", "test")
COMPLETE = "COMPLETE"  # marker written last in a model folder
STATE = "state.json"  # an unfinished training run's last finished epoch
MODEL_FILE = "model.keras"  # in every model folder: images in, p(dog) out (the best epoch)
HEAD_FILE = "head.keras"  # a model trained on stored features: its best head, which takes those features


def run_key(model: str, seed: int) -> str:
    """A run's one name, in locks, staging and failure records: the seed is always in it."""
    return f"{model}-seed-{seed}"


def resolve_data_dir(data_dir: Path | None = None) -> Path:
    """--data-dir wins, then $CATSDOGS_DATA_DIR, then ./data."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass(frozen=True)
class Volume:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def archive(self) -> Path:
        """The Kaggle-format archive, downloaded or generated (absent for a local folder source)."""
        return self.raw / "dogs-vs-cats.zip"

    @property
    def raw_images(self) -> Path:
        return self.raw / "train"

    @property
    def test1(self) -> Path:
        """Kaggle's unlabeled test set (`<id>.jpg`), when the source has one; split and train never read it."""
        return self.raw / "test1"

    @property
    def sample_submission(self) -> Path:
        return self.raw / "sampleSubmission.csv"

    @property
    def raw_manifest(self) -> Path:
        return self.raw / "manifest.json"

    @property
    def downloads(self) -> Path:
        """Where the kaggle client writes (and resumes) its partial download."""
        return self.staging / "kaggle"

    @property
    def subsets(self) -> Path:
        return self.root / "subsets"

    def subset(self, name: str) -> Path:
        return self.subsets / name

    @property
    def split_manifest(self) -> Path:
        return self.subsets / "manifest.json"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, model: str, seed: int = DEFAULT_SEED) -> Path:
        """One run: every seed of a model sits side by side under models/<model>/."""
        return self.models / model / f"seed-{seed}"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def report_dir(self, model: str, seed: int = DEFAULT_SEED) -> Path:
        return self.reports / model / f"seed-{seed}"

    def failure_record(self, model: str, seed: int = DEFAULT_SEED) -> Path:
        """Written when a Kubernetes index gives a run up for good, so the summary can say so."""
        return self.reports / "failed" / f"{run_key(model, seed)}.json"

    def learning(self, train_size: int) -> Volume:
        """The learning curve's volume for one training-set size: its own subsets (the first train_size
        images of this split's training subset, its validation and test subsets as they are), models and
        reports, so every stage runs on it unchanged."""
        return Volume(self.root / "learning" / f"train-{train_size}")

    @property
    def learning_sizes(self) -> list[int]:
        """The sizes whose learning-curve volume exists, in increasing order."""
        found = []
        for folder in (self.root / "learning").glob("train-*"):
            text = folder.name.removeprefix("train-")
            if text.isascii() and text.isdigit() and str(int(text)) == text and folder.is_dir():
                found.append(int(text))
        return sorted(found)

    @property
    def mnist(self) -> Path:
        """The chapter's opening convnet: its models and generated data (reports go under reports/mnist/)."""
        return self.root / "mnist"

    def mnist_model_dir(self, net: str) -> Path:
        return self.mnist / "models" / net

    def mnist_report_dir(self, net: str) -> Path:
        return self.reports / "mnist" / net

    @property
    def keras_home(self) -> Path:
        return self.root / "keras"

    @property
    def locks(self) -> Path:
        """Lock files of the stages that must not run twice at once on this volume (shared/volume/locks.py)."""
        return self.root / ".locks"

    def lock(self, name: str, *, what: str, wait_s: float | None = 0.0):
        from shared.volume.locks import exclusive

        return exclusive(self.locks, name, what=what, wait_s=wait_s)

    def reading(self, data: str, *, what: str):
        """Hold `data` (raw, subsets, model-<name>) unchanged while reading it: shared with other readers;
        waits for a stage replacing it, then gives up (exit 75) naming it. README: "Concurrency"."""
        from shared.volume.locks import data_wait_s, exclusive

        if not self.is_volume():  # nothing to protect, and a reader creates no folder in a stranger's directory
            return contextlib.nullcontext()
        return exclusive(self.locks, f"data-{data}", what=what, wait_s=data_wait_s(), shared=True,
                         busy=f"{what} must wait: {data} is being replaced")

    def is_volume(self) -> bool:
        """Whether a stage has written here: `evaluate --data-dir /` must not create /.locks."""
        return any((self.root / name).is_dir() for name in (".locks", "raw", "subsets", "models", "mnist"))

    def replacing(self, data: str, *, what: str):
        """Replace `data` with nobody reading it: waits for its readers, then gives up (exit 75) naming one."""
        from shared.volume.locks import data_wait_s, exclusive

        return exclusive(self.locks, f"data-{data}", what=what, wait_s=data_wait_s(),
                         busy=f"{what} must wait: {data} is in use")

    @property
    def staging(self) -> Path:
        """Temporary names live on the same filesystem, so renames into place are atomic."""
        return self.root / ".staging"
