"""The seed's five models, layer for layer, as a str Enum mapped to builder functions."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from shared.errors import PermanentError

IMAGE_SIZE = 180
BASE_NAME = "vgg16"
FINE_TUNE_UNFROZEN = 4  # conv_base.layers[-4:]: block5_conv1..3 and block5_pool
FINE_TUNE_LEARNING_RATE = 1e-5


class ModelName(str, Enum):
    scratch = "scratch"
    scratch_augmented = "scratch-augmented"
    feature_extraction = "feature-extraction"
    feature_extraction_augmented = "feature-extraction-augmented"
    fine_tune = "fine-tune"


DEFAULT_EPOCHS = {
    ModelName.scratch: 30,
    ModelName.scratch_augmented: 100,
    ModelName.feature_extraction: 20,
    ModelName.feature_extraction_augmented: 50,
    ModelName.fine_tune: 30,
}
# What the seed reports on the test subset (feature extraction: validation, ~0.97).
SEED_ACCURACY = {
    ModelName.scratch: 0.695,
    ModelName.scratch_augmented: 0.835,
    ModelName.feature_extraction: 0.97,
    ModelName.feature_extraction_augmented: 0.975,
    ModelName.fine_tune: 0.985,
}
USES_VGG16 = {ModelName.feature_extraction, ModelName.feature_extraction_augmented, ModelName.fine_tune}
# fine-tune starts from this model's best checkpoint.
PREREQUISITE = {ModelName.fine_tune: ModelName.feature_extraction_augmented}


def min_image_size(model: ModelName) -> int:
    """The smallest square side each architecture accepts (no layer may shrink a map below 1 pixel)."""
    if model in USES_VGG16:
        return 32  # five 2x2 poolings
    side = 1
    for _ in range(4):  # undo conv (3x3, valid) then pool (2) for the last conv and each pooling stage
        side = (side + 2) * 2
    return side + 2


def data_augmentation(*, seed: int | None = None):
    from tensorflow import keras
    from tensorflow.keras import layers

    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.1, seed=seed),
        layers.RandomZoom(0.2, seed=seed),
    ], name="data_augmentation")


def _compile(model, *, learning_rate: float | None, jit_compile: bool | str = "auto"):
    from tensorflow import keras

    optimizer = "rmsprop" if learning_rate is None else keras.optimizers.RMSprop(learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def _output(x):
    from tensorflow.keras import layers

    # float32 even under a mixed precision policy: a float16 sigmoid saturates and breaks the loss.
    return layers.Dense(1, activation="sigmoid", dtype="float32")(x)


def _scratch(*, image_size: int, augment: bool, seed: int | None, learning_rate: float | None,
             jit_compile: bool | str = "auto"):
    from tensorflow import keras
    from tensorflow.keras import layers

    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = data_augmentation(seed=seed)(inputs) if augment else inputs
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (32, 64, 128, 256):
        x = layers.Conv2D(filters=filters, kernel_size=3, activation="relu")(x)
        x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=256, kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    if augment:
        x = layers.Dropout(0.5)(x)
    return _compile(keras.Model(inputs=inputs, outputs=_output(x)), learning_rate=learning_rate,
                    jit_compile=jit_compile)


def build_scratch(*, image_size: int = IMAGE_SIZE, learning_rate: float | None = None, seed: int | None = None,
                  jit_compile: bool | str = "auto", **_):
    return _scratch(image_size=image_size, augment=False, seed=seed, learning_rate=learning_rate,
                    jit_compile=jit_compile)


def build_scratch_augmented(*, image_size: int = IMAGE_SIZE, learning_rate: float | None = None,
                            seed: int | None = None, jit_compile: bool | str = "auto", **_):
    return _scratch(image_size=image_size, augment=True, seed=seed, learning_rate=learning_rate,
                    jit_compile=jit_compile)


def conv_base(*, weights: str | Path | None, image_size: int | None = IMAGE_SIZE):
    """VGG16 without its top; `weights` is "imagenet", None (random), or a local weights file."""
    from tensorflow import keras

    from shared.doctor import BAKED_WEIGHTS_ENV

    shape = (image_size, image_size, 3) if image_size else None
    baked = os.environ.get(BAKED_WEIGHTS_ENV)
    if weights == "imagenet" and baked and Path(baked).is_file():  # an image built with the weights inside
        weights = baked
    try:
        return keras.applications.vgg16.VGG16(weights=str(weights) if weights else None, include_top=False,
                                              input_shape=shape)
    except Exception as e:  # a failed download or an unreadable file: both permanent for this run
        if weights == "imagenet":
            raise PermanentError(
                "cannot get the VGG16 ImageNet weights (no network?): put "
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in $KERAS_HOME/models/ "
                "(the volume's keras/models/), or pass --weights PATH, or --weights none") from None
        raise PermanentError(f"cannot load VGG16 weights from {weights}: {type(e).__name__}: {e}") from None


def build_head(*, feature_shape: tuple[int, ...], learning_rate: float | None = None,
               jit_compile: bool | str = "auto", **_):
    """The densely connected classifier trained on stored VGG16 features."""
    from tensorflow import keras
    from tensorflow.keras import layers

    inputs = keras.Input(shape=feature_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(256)(x)
    x = layers.Dropout(0.5)(x)
    return _compile(keras.Model(inputs, _output(x)), learning_rate=learning_rate, jit_compile=jit_compile)


def build_feature_extraction(*, image_size: int = IMAGE_SIZE, feature_shape: tuple[int, ...] | None = None,
                             learning_rate: float | None = None, jit_compile: bool | str = "auto", **_):
    side = image_size // 32  # five 2x2 poolings
    return build_head(feature_shape=feature_shape or (side, side, 512), learning_rate=learning_rate,
                      jit_compile=jit_compile)


def build_feature_extraction_augmented(*, image_size: int = IMAGE_SIZE, weights: str | Path | None = "imagenet",
                                       learning_rate: float | None = None, seed: int | None = None,
                                       jit_compile: bool | str = "auto", **_):
    from tensorflow import keras
    from tensorflow.keras import layers

    base = conv_base(weights=weights, image_size=None)  # as the seed: no input_shape
    base.trainable = False
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = data_augmentation(seed=seed)(inputs)
    x = keras.applications.vgg16.preprocess_input(x)
    x = base(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256)(x)
    x = layers.Dropout(0.5)(x)
    return _compile(keras.Model(inputs, _output(x)), learning_rate=learning_rate, jit_compile=jit_compile)


def find_base(model):
    for layer in model.layers:
        if layer.name == BASE_NAME:
            return layer
    raise PermanentError(f"model {model.name} has no {BASE_NAME} layer to fine-tune")


def prepare_fine_tune(model, *, learning_rate: float | None = None, jit_compile: bool | str = "auto"):
    """Unfreeze the last four layers of the VGG16 base, keep the rest frozen, recompile at 1e-5."""
    base = find_base(model)
    base.trainable = True
    for layer in base.layers[:-FINE_TUNE_UNFROZEN]:
        layer.trainable = False
    return _compile(model, learning_rate=learning_rate or FINE_TUNE_LEARNING_RATE, jit_compile=jit_compile)


def build_fine_tune(*, base_model_path: Path, learning_rate: float | None = None, jit_compile: bool | str = "auto",
                    **_):
    from tensorflow import keras

    return prepare_fine_tune(keras.models.load_model(base_model_path, compile=False), learning_rate=learning_rate,
                             jit_compile=jit_compile)


BUILDERS = {
    ModelName.scratch: build_scratch,
    ModelName.scratch_augmented: build_scratch_augmented,
    ModelName.feature_extraction: build_feature_extraction,
    ModelName.feature_extraction_augmented: build_feature_extraction_augmented,
    ModelName.fine_tune: build_fine_tune,
}
