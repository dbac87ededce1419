"""The catalog's models against the seed: layers, parameter counts, fine-tuning's frozen layers, save/reload."""

import numpy as np
import pytest

from shared.training import models as m
from shared.training.catalog import SPECS, ModelName, spec

SCRATCH_LAYERS = ["InputLayer", "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
                  "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense"]
HEAD = 12_800 * 256 + 256 + 256 + 1  # Dense(256) on 5x5x512 features, then Dense(1)
VGG16 = 14_714_688


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def _trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_scratch_is_the_seeds_layer_for_layer():
    model = m.build_scratch(image_size=180)
    assert _kinds(model) == SCRATCH_LAYERS
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [32, 64, 128, 256, 256]
    assert model.count_params() == 991_041
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_scratch_augmented_adds_augmentation_and_dropout():
    model = m.build_scratch_augmented(image_size=180, seed=1)
    kinds = _kinds(model)
    assert kinds[:3] == ["InputLayer", "Sequential", "Rescaling"] and kinds[-2:] == ["Dropout", "Dense"]
    augment = model.layers[1]
    assert [type(x).__name__ for x in augment.layers] == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert augment.layers[0].mode == "horizontal" and augment.layers[1].factor in (0.1, (-0.1, 0.1))
    assert model.layers[-2].rate == 0.5
    assert model.count_params() == 991_041


def test_feature_extraction_head():
    model = m.build_feature_extraction(image_size=180)
    assert model.input_shape == (None, 5, 5, 512)
    assert _kinds(model) == ["InputLayer", "Flatten", "Dense", "Dropout", "Dense"]
    assert model.layers[2].units == 256 and model.layers[2].activation.__name__ == "linear"  # as the seed
    assert model.count_params() == HEAD == 3_277_313


def test_vgg16_base():
    base = m.conv_base(weights=None, image_size=180)
    assert base.count_params() == VGG16
    assert base.output_shape == (None, 5, 5, 512)


def test_feature_extraction_augmented_freezes_vgg16():
    model = m.build_feature_extraction_augmented(image_size=180, weights=None, seed=1)
    assert model.count_params() == VGG16 + HEAD == 17_992_001
    assert _trainable(model) == HEAD
    assert not m.find_base(model).trainable


def test_fine_tune_unfreezes_exactly_the_last_four_layers(tmp_path):
    path = tmp_path / "base.keras"
    m.build_feature_extraction_augmented(image_size=64, weights=None, seed=1).save(path)
    model = m.build_fine_tune(base_model_path=path)
    base = m.find_base(model)
    flags = {layer.name: layer.trainable for layer in base.layers}
    assert [name for name, on in flags.items() if on] == ["block5_conv1", "block5_conv2", "block5_conv3",
                                                         "block5_pool"]
    assert not any(flags[layer.name] for layer in base.layers[:-4])
    assert _trainable(model) == HEAD - 12_800 * 256 + (64 // 32) ** 2 * 512 * 256 + 3 * 2_359_808
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
    assert type(model.optimizer).__name__ == "RMSprop"


def test_fine_tune_parameter_counts_at_180(tmp_path):
    path = tmp_path / "base.keras"
    m.build_feature_extraction_augmented(image_size=180, weights=None, seed=1).save(path)
    model = m.build_fine_tune(base_model_path=path)
    assert model.count_params() == 17_992_001
    assert _trainable(model) == HEAD + 3 * 2_359_808 == 10_356_737


@pytest.mark.parametrize("name", [n for n in ModelName if n is not ModelName.fine_tune])
def test_every_builder_saves_and_reloads_to_the_same_predictions(name, tmp_path):
    from tensorflow import keras

    size = max(spec(name).min_image_size, 32)
    model = spec(name).build(image_size=size, weights=None, seed=3)
    shape = model.input_shape[1:]
    x = np.random.default_rng(0).uniform(0, 255, size=(4, *shape)).astype("float32")
    model.fit(x, np.array([0, 1, 0, 1], dtype="float32"), epochs=1, verbose=0)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    after = keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0)
    np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)


def test_min_image_size_is_the_real_limit():
    smallest = spec(ModelName.scratch).min_image_size
    m.build_scratch(image_size=smallest)
    with pytest.raises(ValueError):
        m.build_scratch(image_size=smallest - 1)


def test_models_are_an_enum_mapped_to_builders():
    assert list(SPECS) == list(ModelName) and all(s.name is n for n, s in SPECS.items())
    # the seed's README: epochs and the book's accuracy of each of its models (a model added later has its own)
    seed = {"scratch": (30, 0.695), "scratch-augmented": (100, 0.835), "feature-extraction": (20, 0.97),
            "feature-extraction-augmented": (50, 0.975), "fine-tune": (30, 0.985)}
    assert {n.value: (s.epochs, s.book_accuracy) for n, s in SPECS.items() if n.value in seed} == seed
    assert [s.name for s in SPECS.values() if s.on_features] == [ModelName.feature_extraction]
    assert spec("fine-tune").starts_from is ModelName.feature_extraction_augmented


def test_no_builder_swallows_unknown_arguments():
    import inspect

    for s in SPECS.values():
        kinds = {p.kind for p in inspect.signature(s.builder).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, s.name
    with pytest.raises(TypeError):
        m.build_scratch(image_size=80, feature_shape=(1, 1, 512))


def test_catalog_needs_no_tensorflow():
    """`make help` and the GPU check read it with the system's python3, outside the virtual environment."""
    import subprocess
    import sys

    code = "import sys, shared.training.catalog; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    out = subprocess.run([sys.executable, "-m", "shared.training.catalog", "names"], capture_output=True, text=True)
    assert out.stdout.split() == [n.value for n in ModelName]
