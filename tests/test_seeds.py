"""Issue 18: seeds as a dimension, and every number with its spread."""

import statistics

import numpy as np
import pytest

from shared.core.errors import PermanentError, UsageError
from shared.core.seeds import DEFAULT_SEED
from shared.data.split import SplitConfig, split
from shared.orchestration.chain import assignment, chains, completions
from shared.orchestration.reporting import EvaluateConfig, evaluate
from shared.reports.stats import mark, spread, wilson
from shared.training.catalog import ModelName
from shared.training.runs import finished_seeds, trained_run
from shared.training.train import TrainConfig, train, train_with_prerequisite
from shared.volume.fsutil import read_json
from shared.volume.layout import COMPLETE, Volume

SIZES = {ModelName.scratch: 80, ModelName.feature_extraction: 32, ModelName.feature_extraction_augmented: 32,
         ModelName.fine_tune: 32}


@pytest.fixture
def tiny_split(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    return fetched


def _train(root, model: ModelName, seed: int):
    return train(config=TrainConfig(data_dir=root, model=model, epochs=1, image_size=SIZES[model], batch_size=8,
                                    weights="none", seed=seed))


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 0.27753),  # z^2 / (n + z^2)
    (10, 10, 0.72247, 1.0),  # n / (n + z^2)
    (5, 10, 0.23659, 0.76341),
    (1390, 2000, 0.67446, 0.71479),  # the book's scratch model: about +-2 points on 2,000 test images
])
def test_wilson_intervals_against_known_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)
    with pytest.raises(ValueError):
        wilson(n + 1, n)


def test_spread_and_where_the_book_falls():
    s = spread([0.70, 0.72, 0.75])
    assert (s.n, s.low, s.high) == (3, 0.70, 0.75)
    assert s.mean == pytest.approx(0.72333333) and s.sd == pytest.approx(statistics.stdev([0.70, 0.72, 0.75]))
    assert spread([0.7]).sd is None
    assert [mark(b, 0.70, 0.75) for b in (0.695, 0.70, 0.73, 0.75, 0.751)] == \
        ["below", "inside", "inside", "inside", "above"]
    assert mark(None, 0.7, 0.75) is None


def test_every_chain_and_seed_has_exactly_one_index():
    seeds = (1337, 1, 2)
    assert completions(seeds) == len(chains()) * 3
    pairs = [assignment(i, seeds) for i in range(completions(seeds))]
    assert sorted(pairs) == sorted((c, s) for c in range(len(chains())) for s in seeds)
    assert [s for _, s in pairs[:len(chains())]] == [1337] * len(chains())  # seed-major: the first seed first
    for bad in (-1, completions(seeds)):
        with pytest.raises(UsageError, match="chains x 3 seeds"):
            assignment(bad, seeds)


@pytest.mark.slow
def test_two_seeds_of_two_models_side_by_side_with_their_spread(tiny_split):
    vol = Volume(tiny_split)
    models = (ModelName.scratch, ModelName.feature_extraction)
    for seed in (1, 2):
        for model in models:
            assert _train(tiny_split, model, seed) == vol.model_dir(model.value, seed)
    assert finished_seeds(vol, "scratch") == [1, 2]
    rows = {r["model"]: r for r in evaluate(config=EvaluateConfig(data_dir=tiny_split))}
    for model in models:
        accuracies = [read_json(vol.report_dir(model.value, s) / "metrics.json")["metrics"]["accuracy"]
                      for s in (1, 2)]
        row = rows[model.value]
        assert row["n"] == 2 and row["seeds"] == [1, 2]
        assert row["accuracy"].mean == pytest.approx(np.mean(accuracies))
        assert row["accuracy"].sd == pytest.approx(np.std(accuracies, ddof=1))
        assert (row["accuracy"].low, row["accuracy"].high) == (min(accuracies), max(accuracies))
    summary = (vol.reports / "summary.md").read_text()
    assert any(line.startswith("| scratch [SYNTHETIC] | 2 |") for line in summary.splitlines()), summary

    # A third seed later: its run is added to the row, the first two are neither retrained nor rescored.
    kept = {s: ((vol.model_dir("scratch", s) / COMPLETE).stat().st_mtime_ns,
                (vol.report_dir("scratch", s) / "metrics.json").read_bytes()) for s in (1, 2)}
    _train(tiny_split, ModelName.scratch, 3)
    rows = {r["model"]: r for r in evaluate(config=EvaluateConfig(data_dir=tiny_split))}
    assert rows["scratch"]["n"] == 3 and rows["feature-extraction"]["n"] == 2
    assert kept == {s: ((vol.model_dir("scratch", s) / COMPLETE).stat().st_mtime_ns,
                        (vol.report_dir("scratch", s) / "metrics.json").read_bytes()) for s in (1, 2)}


@pytest.mark.slow
def test_fine_tune_of_a_seed_starts_from_the_same_seeds_base(tiny_split):
    from tensorflow import keras

    vol = Volume(tiny_split)
    for seed in (1, 2):
        _train(tiny_split, ModelName.feature_extraction_augmented, seed)
    train_with_prerequisite(config=TrainConfig(data_dir=tiny_split, model=ModelName.fine_tune, epochs=1,
                                               image_size=32, batch_size=8, weights="none", seed=2))
    assert not vol.model_dir("feature-extraction-augmented", DEFAULT_SEED).exists()

    def first_kernel(model: str, seed: int) -> np.ndarray:
        loaded = keras.models.load_model(vol.model_dir(model, seed) / "model.keras")
        return next(w.numpy() for w in loaded.weights if tuple(w.shape) == (3, 3, 3, 64))  # block1_conv1, frozen

    tuned = first_kernel("fine-tune", 2)
    np.testing.assert_array_equal(tuned, first_kernel("feature-extraction-augmented", 2))
    assert not np.array_equal(tuned, first_kernel("feature-extraction-augmented", 1))


def test_a_seed_not_trained_names_the_seeds_that_are(tiny_split):
    vol = Volume(tiny_split)
    (vol.model_dir("scratch", 5)).mkdir(parents=True)
    (vol.model_dir("scratch", 5) / COMPLETE).write_text("done\n")
    with pytest.raises(PermanentError, match=r"not trained with seed 1337 .*trained seeds: 5; pick one with --seed"):
        trained_run(vol, "scratch")


def test_make_chapter_trains_every_model_for_every_seed_with_the_options_given(tmp_path):
    """SEED (one run) must not leak into the chapter's loop, nor take other options' values with it."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-C", str(root), "chapter", "SEEDS=4 5", "SEED=1", "EPOCHS=1",
                          f"DATA_DIR={tmp_path}"], capture_output=True, text=True, check=True).stdout
    trains = [line.split() for line in out.splitlines() if " train --model " in line]
    # one recipe line per run (make passes SIGTERM to each), seed-major, every model of the catalog
    assert [(t[t.index("--model") + 1], t[t.index("--seed") + 1]) for t in trains] == \
        [(m.value, seed) for seed in ("4", "5") for m in ModelName]
    assert all(t.count("--seed") == 1 and t[t.index("--epochs") + 1] == "1" for t in trains), trains
