"""Grad-CAM (Selvaraju et al. 2017, the book's chapter 9): where in a photo a model found its answer.

The class score's gradient with respect to the last convolution's activations, averaged over the map,
weighs each channel; the weighted sum, through a ReLU, is the heat map. The score is the output layer's
logit (for "dog", its negative for "cat"): the sigmoid's own gradient vanishes where a model is sure.

Models that nest VGG16 as one layer cannot be cut at `block5_conv3` with one `keras.Model(inputs,
[inner.output, ...])`: the inner layer's tensors belong to VGG16's own graph, and Keras answers "Graph
disconnected" (tensorflow#44462, keras-io#653). The model is cut into three graphs instead: what runs
before the nested base, the base up to its last convolution and on to its output, and what runs after.
The feature-extraction model is explained as model.keras is built: its VGG16 in front of its head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.core.errors import PermanentError


@dataclass(frozen=True)
class Explainer:
    layer: str  # the convolution whose activations are weighed ("vgg16/block5_conv3" when nested)
    forward: object  # images -> (activations, the output layer's input)
    kernel: object
    bias: object
    geometry: tuple[float, float]  # (offset, stride): cell i's centre is at input pixel offset + stride * i


def _geometry(layers) -> tuple[float, float]:
    """Where the cells of the last of `layers` sit in the input: their receptive fields' centres.

    Valid convolutions and pooling shave the border: the scratch convnet's last 4x4 map at 128px has its
    centres between pixels 38 and 87, so a map stretched over the whole picture would point beside the
    evidence. Layers that keep the spatial shape (augmentation, rescaling) change nothing."""
    from tensorflow import keras

    offset, stride = 0.0, 1.0
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            kernel = layer.kernel_size[0] if hasattr(layer, "kernel_size") else layer.pool_size[0]
            step = layer.strides[0]
            # "same" pads (kernel - 1) // 2 before (more after when odd), so centres stay put at stride 1
            shift = (kernel - 1) / 2 - (0 if layer.padding == "valid" else (kernel - 1) // 2)
            offset, stride = offset + stride * shift, stride * step
    return offset, stride


def _is_conv(layer) -> bool:
    from tensorflow import keras

    return isinstance(layer, keras.layers.Conv2D)


def _nested_convs(layer) -> bool:
    return hasattr(layer, "layers") and any(_is_conv(inner) for inner in layer.layers)


def _called_once(layer, model):
    if len(layer._inbound_nodes) != 1:  # no public API says where a nested model was called
        raise PermanentError(f"cannot explain {model.name}: {layer.name} is called more than once")
    return layer._inbound_nodes[0]


def explainer(model) -> Explainer:
    """How to explain `model`: a model of the catalog, or any functional model ending in a one-unit sigmoid
    Dense layer (at its top level or as the last layer of a nested head, as feature-extraction's model.keras)
    with a 2-D convolution before it (at its top level or inside one nested model)."""
    from tensorflow import keras

    last, head_model = model.layers[-1], None
    if hasattr(last, "layers"):  # the head as one nested model
        head_model, last = last, last.layers[-1]
    if not (isinstance(last, keras.layers.Dense) and last.units == 1
            and getattr(last.activation, "__name__", "") == "sigmoid"):
        raise PermanentError(f"cannot explain {model.name}: its output is not one sigmoid unit")
    if head_model is None:
        head, finish = last.input, (lambda t: t)
    else:  # the outer graph ends where the head starts; the head's own graph runs up to its last layer
        head = _called_once(head_model, model).input_tensors[0]
        inner = keras.Model(head_model.inputs, last.input)
        finish = lambda t: inner(t, training=False)  # noqa: E731
    top = [layer for layer in model.layers if _is_conv(layer)]
    if top:
        conv = top[-1]
        graph = keras.Model(model.inputs, [conv.output, head])

        def forward(x):
            activations, features = graph(x, training=False)
            return activations, finish(features)

        upto = model.layers[:model.layers.index(conv) + 1]
        return Explainer(conv.name, forward, last.kernel, last.bias, _geometry(upto))
    nested = [layer for layer in model.layers if _nested_convs(layer)]
    if not nested:
        raise PermanentError(f"cannot explain {model.name}: it has no convolution")
    base = nested[-1]
    node = _called_once(base, model)
    conv = [layer for layer in base.layers if _is_conv(layer)][-1]
    before = keras.Model(model.inputs, node.input_tensors[0])
    inside = keras.Model(base.inputs, [conv.output, base.output])
    after = None if head is node.output_tensors[0] else keras.Model(node.output_tensors[0], head)

    def forward(x):
        activations, features = inside(before(x, training=False), training=False)
        return activations, finish(features if after is None else after(features, training=False))

    upto = [*model.layers[:model.layers.index(base)], *base.layers[:base.layers.index(conv) + 1]]
    return Explainer(f"{base.name}/{conv.name}", forward, last.kernel, last.bias, _geometry(upto))


def grad_cam(explain: Explainer, images) -> tuple[np.ndarray, np.ndarray]:
    """(heat maps in [0, 1] at the convolution's resolution, p(dog)) for a batch of float pixels 0-255.

    Each map explains the class the model chose for its image."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        activations, head = explain.forward(x)
        activations = tf.cast(activations, tf.float32)
        tape.watch(activations)
        logit = tf.matmul(tf.cast(head, tf.float32), tf.cast(explain.kernel, tf.float32))[:, 0] \
            + tf.cast(explain.bias, tf.float32)[0]
        sign = tf.where(logit > 0, 1.0, -1.0)  # the chosen class: dog when p > 0.5
        score = tf.reduce_sum(sign * logit)
    grads = tape.gradient(score, activations)
    if grads is None:
        raise PermanentError(f"cannot explain through {explain.layer}: no gradient reaches it")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
    peak = cams.max(axis=(1, 2), keepdims=True)
    cams = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
    return cams, tf.sigmoid(logit).numpy()


def upsample(cam: np.ndarray, *, geometry: tuple[float, float], size: int, height: int, width: int) -> np.ndarray:
    """A map over a picture of height x width that the model saw resized to size x size: each cell at its
    receptive field's centre, bilinear between centres, fading to nothing one stride beyond the outermost
    (a map clamped to the picture's edges would draw bands of heat where no cell is)."""
    offset, stride = geometry

    def index(n: int) -> np.ndarray:  # picture pixel -> cell (tf.image.resize's half-pixel centres), 1 = first
        return (((np.arange(n) + 0.5) * size / n - 0.5) - offset) / stride + 1

    padded = np.pad(cam, 1)
    rows, cols = index(height), index(width)
    across = np.stack([np.interp(cols, np.arange(padded.shape[1]), line, left=0, right=0) for line in padded])
    return np.clip(np.stack([np.interp(rows, np.arange(padded.shape[0]), across[:, j], left=0, right=0)
                             for j in range(width)], axis=1), 0.0, 1.0)


def mass_inside(cam: np.ndarray, box: tuple[float, float, float, float], *, geometry: tuple[float, float],
                size: int) -> float:
    """The share of the map's mass inside `box` (fractions left, top, right, bottom of the picture)."""
    heat = upsample(cam, geometry=geometry, size=size, height=size, width=size)
    total = float(heat.sum())
    if total <= 0:
        return 0.0
    left, top, right, bottom = (round(v * size) for v in box)
    return float(heat[top:bottom, left:right].sum()) / total


def overlay(picture, cam: np.ndarray, *, geometry: tuple[float, float], size: int, alpha: float = 0.45):
    """The picture (a PIL image, any size) with the map over it in the jet colours, as a PIL image."""
    from matplotlib import colormaps
    from PIL import Image

    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32)
    heat = upsample(cam, geometry=geometry, size=size, height=rgb.shape[0], width=rgb.shape[1])
    coloured = colormaps["jet"](heat)[..., :3] * 255
    return Image.fromarray(np.clip((1 - alpha) * rgb + alpha * coloured, 0, 255).astype(np.uint8))
