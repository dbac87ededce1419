"""The seed's models, layer for layer: one builder each (shared.training.catalog maps the names to them)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from shared.core.errors import PermanentError, one_line

IMAGE_SIZE = 180
BASE_NAME = "vgg16"
FINE_TUNE_UNFROZEN = 4  # conv_base.layers[-4:]: block5_conv1..3 and block5_pool
FINE_TUNE_LEARNING_RATE = 1e-5


# The smallest square sides the architectures accept (no layer may shrink a map below 1 pixel).
VGG16_MIN_SIZE = 32  # VGG16 halves the side in each of its 5 blocks
SCRATCH_MIN_SIZE = 78  # undo conv (3x3, valid) then pool (2) for the last conv and each of four pooling stages


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
                  jit_compile: bool | str = "auto"):
    return _scratch(image_size=image_size, augment=False, seed=seed, learning_rate=learning_rate,
                    jit_compile=jit_compile)


def build_scratch_augmented(*, image_size: int = IMAGE_SIZE, learning_rate: float | None = None,
                            seed: int | None = None, jit_compile: bool | str = "auto"):
    return _scratch(image_size=image_size, augment=True, seed=seed, learning_rate=learning_rate,
                    jit_compile=jit_compile)


def conv_base(*, weights: str | Path | None, image_size: int | None = IMAGE_SIZE):
    """VGG16 without its top; `weights` is "imagenet", None (random), or a local weights file."""
    from tensorflow import keras

    from shared.training.doctor import BAKED_WEIGHTS_ENV, VGG16_FILE
    from shared.volume.locks import keras_download_lock

    shape = (image_size, image_size, 3) if image_size else None
    baked = os.environ.get(BAKED_WEIGHTS_ENV)
    if weights == "imagenet" and baked and Path(baked).is_file():  # an image built with the weights inside
        weights = baked
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    # Only a download takes the lock (and needs KERAS_HOME writable): random weights, a weights file or
    # weights downloaded before need neither. Keras still checks a cached file's hash.
    download = weights == "imagenet" and not (home / "models" / VGG16_FILE).is_file()
    try:
        with keras_download_lock() if download else contextlib.nullcontext():
            return keras.applications.vgg16.VGG16(weights=str(weights) if weights else None, include_top=False,
                                                  input_shape=shape)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # a permission, not the network: say which
            raise PermanentError(f"cannot write the VGG16 weights into KERAS_HOME={home}: {e.strerror} "
                                 f"({e.filename or home}); `catsdogs doctor` shows who may write there") from None
        raise _weights_error(weights, e) from None
    except Exception as e:  # a failed download or an unreadable file: both permanent for this run
        raise _weights_error(weights, e) from None


def _weights_error(weights, e: Exception) -> PermanentError:
    if weights == "imagenet":
        return PermanentError(
            f"cannot get the VGG16 ImageNet weights ({one_line(e, limit=160)}): put "
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in $KERAS_HOME/models/ "
            "(the volume's keras/models/), or pass --weights PATH, or --weights none")
    return PermanentError(f"cannot load VGG16 weights from {weights}: {type(e).__name__}: {one_line(e, limit=200)}")


def build_head(*, feature_shape: tuple[int, ...], learning_rate: float | None = None,
               jit_compile: bool | str = "auto"):
    """The densely connected classifier trained on stored VGG16 features."""
    from tensorflow import keras
    from tensorflow.keras import layers

    inputs = keras.Input(shape=feature_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(256)(x)
    x = layers.Dropout(0.5)(x)
    return _compile(keras.Model(inputs, _output(x)), learning_rate=learning_rate, jit_compile=jit_compile)


def build_feature_extraction(*, image_size: int = IMAGE_SIZE, feature_shape: tuple[int, ...] | None = None,
                             learning_rate: float | None = None, jit_compile: bool | str = "auto"):
    side = image_size // 32  # one 2x2 pooling per VGG16 block
    return build_head(feature_shape=feature_shape or (side, side, 512), learning_rate=learning_rate,
                      jit_compile=jit_compile)


def build_feature_extraction_augmented(*, image_size: int = IMAGE_SIZE, weights: str | Path | None = "imagenet",
                                       learning_rate: float | None = None, seed: int | None = None,
                                       jit_compile: bool | str = "auto"):
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


def load_trained(path: Path):
    """A saved model; a missing, truncated or foreign file is a PermanentError in one line, not Keras's dump."""
    from tensorflow import keras

    try:
        return keras.models.load_model(path)
    except Exception as e:  # Keras raises ValueError, OSError, KeyError... with pages of detail
        raise PermanentError(f"cannot load the model at {path} ({one_line(e, limit=200) or type(e).__name__}): "
                             "retrain it with --force") from None


def find_base(model):
    for layer in model.layers:
        if layer.name == BASE_NAME:
            return layer
    raise PermanentError(f"model {model.name} has no {BASE_NAME} layer to fine-tune")


def unfreeze_top(model) -> None:
    """The last four layers of the VGG16 base trainable, the rest frozen: what fine-tuning trains."""
    base = find_base(model)
    base.trainable = True
    for layer in base.layers[:-FINE_TUNE_UNFROZEN]:
        layer.trainable = False


def prepare_fine_tune(model, *, learning_rate: float | None = None, jit_compile: bool | str = "auto"):
    """Unfreeze the last four layers of the VGG16 base, keep the rest frozen, recompile at 1e-5."""
    unfreeze_top(model)
    return _compile(model, learning_rate=learning_rate or FINE_TUNE_LEARNING_RATE, jit_compile=jit_compile)


def build_fine_tune(*, base_model_path: Path, learning_rate: float | None = None,
                    jit_compile: bool | str = "auto"):
    from tensorflow import keras

    return prepare_fine_tune(keras.models.load_model(base_model_path, compile=False), learning_rate=learning_rate,
                             jit_compile=jit_compile)
