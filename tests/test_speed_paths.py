"""The fast paths change nothing: cached batches, one-pass features, mixed precision."""

import numpy as np
import pytest

from shared.data.pipeline import array_batches, subset_dataset, training_batches
from shared.data.split import SplitConfig, split
from shared.training.catalog import ModelName
from shared.training.train import TrainConfig, train
from shared.volume.layout import Volume


@pytest.fixture
def tiny_split(fetched):
    split(config=SplitConfig(data_dir=fetched, train=12, validation=6, test=6))
    return fetched


def _epochs(data_steps) -> list[list[tuple]]:
    data, steps = data_steps
    batches = [(x.numpy(), y.numpy()) for x, y in data]
    assert len(batches) % steps == 0
    return [batches[at:at + steps] for at in range(0, len(batches), steps)]


def _same(a, b):
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_training_batches_cached_or_not_and_resumed_are_the_same(tiny_split):
    kw = {"volume": Volume(tiny_split), "image_size": 48, "batch_size": 5, "seed": 7, "epochs": 3}
    cached, plain = _epochs(training_batches(cache=True, first_epoch=0, **kw)), \
        _epochs(training_batches(cache=False, first_epoch=0, **kw))
    assert len(cached) == 3 and [len(e) for e in cached] == [5, 5, 5]  # 24 images: 4 batches of 5, one of 4
    for epoch_cached, epoch_plain in zip(cached, plain, strict=True):
        _same(epoch_cached, epoch_plain)
    # A process that starts at epoch 2 (a resumed run) reads what the uninterrupted one read there.
    for e, epoch in enumerate(_epochs(training_batches(cache=True, first_epoch=1, **kw)), start=1):
        _same(epoch, cached[e])
    # Shuffled every epoch, by the seed alone.
    assert not np.array_equal(cached[0][0][0], cached[1][0][0])
    other = _epochs(training_batches(cache=True, first_epoch=0, **{**kw, "seed": 8}))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(cached[0], other[0], strict=True))


def test_array_batches_are_a_function_of_seed_and_epoch():
    x, y = np.arange(14, dtype=np.float32).reshape(7, 2), np.arange(7, dtype=np.float32).reshape(7, 1)
    whole = _epochs(array_batches(x, y, batch_size=3, seed=2, first_epoch=0, epochs=4))
    assert [len(e) for e in whole] == [3, 3, 3, 3]
    for epoch in whole:  # every row once an epoch, its label beside it
        rows = np.concatenate([b[0] for b in epoch])
        assert sorted(rows[:, 0].tolist()) == list(range(0, 14, 2))
        np.testing.assert_array_equal(np.concatenate([b[1] for b in epoch])[:, 0], rows[:, 0] / 2)
    _same(_epochs(array_batches(x, y, batch_size=3, seed=2, first_epoch=2, epochs=4))[1], whole[3])
    assert len({tuple(np.concatenate([b[1] for b in e]).ravel()) for e in whole}) > 1


def test_pipelines_run_without_autotuning(tiny_split):
    """Autotuning's thread held up every iterator's teardown for seconds on a busy CPU (see pipeline_options);
    each stage reads images through subset_dataset, so this is the one place to check."""
    first, _ = training_batches(volume=Volume(tiny_split), image_size=32, batch_size=4, seed=1, cache=True,
                                first_epoch=0, epochs=1)
    assert first.options().autotune.enabled is False
    for subset, cache, images in (("train", True, 24), ("test", False, 12)):
        data = subset_dataset(volume=Volume(tiny_split), subset=subset, image_size=32, batch_size=4, cache=cache)
        assert data.options().autotune.enabled is False
        assert sum(int(x.shape[0]) for x, _ in data) == images


def test_same_images_as_image_dataset_from_directory(tiny_split):
    from tensorflow import keras

    vol = Volume(tiny_split)
    ours = subset_dataset(volume=vol, subset="validation", image_size=40, batch_size=4, cache=True)
    theirs = keras.utils.image_dataset_from_directory(vol.subset("validation"), label_mode="binary",
                                                      class_names=["cat", "dog"], image_size=(40, 40),
                                                      batch_size=4, shuffle=False, verbose=False)
    assert ours.file_paths == theirs.file_paths
    for (xo, yo), (xt, yt) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(xo.numpy(), xt.numpy())
        np.testing.assert_array_equal(yo.numpy(), yt.numpy())


def test_one_pass_features_equal_the_seeds_per_batch_predict(tiny_split):
    from tensorflow import keras

    from shared.data.split import load_manifest
    from shared.training.features import build_base, ensure_features, load_features

    vol = Volume(tiny_split)
    store = ensure_features(volume=vol, split_manifest=load_manifest(vol), weights="none", seed=3, image_size=64,
                            batch_size=5)
    base = build_base(weights="none", seed=3, image_size=64, store=store)
    data = subset_dataset(volume=vol, subset="validation", image_size=64, batch_size=5)
    per_batch = np.concatenate([base.predict(keras.applications.vgg16.preprocess_input(images), verbose=0)
                                for images, _ in data])  # the seed's loop
    features, labels = load_features(store, "validation")
    np.testing.assert_allclose(np.asarray(features), per_batch, rtol=1e-4, atol=1e-4)
    assert labels.tolist() == [0.0] * 6 + [1.0] * 6


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_reloads_in_float32(tiny_split, precision):
    from tensorflow import keras

    folder = train(config=TrainConfig(data_dir=tiny_split, model=ModelName.scratch, epochs=1, image_size=80,
                                      batch_size=6, precision=precision))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for the rest of the process
    model = keras.models.load_model(folder / "model.keras")
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    assert any(layer.dtype_policy.name == precision for layer in model.layers)
    x = np.random.default_rng(0).uniform(0, 255, size=(3, 80, 80, 3)).astype("float32")
    p = model.predict(x, verbose=0)
    assert p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
