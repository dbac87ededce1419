"""Issue 28, section 2: Grad-CAM for every model of the catalog, nested VGG16 included, and where it points."""

from pathlib import Path

import numpy as np
import pytest

from shared.reports import gradcam
from shared.training.catalog import SPECS, ModelName
from shared.training.models import load_trained
from shared.training.train import TrainConfig, train
from shared.volume.layout import MODEL_FILE, Volume
from tests.conftest import VGG_SIZE
from tests.helpers import jobs, one_error


def _test_images(vol: Volume) -> list[Path]:
    return sorted((vol.subsets / "test").rglob("*.jpg"))


@pytest.mark.slow
@pytest.mark.parametrize("model", list(ModelName))
def test_every_model_is_explained_by_its_last_convolution(every_model, model):
    """The three-graph cut of a nested VGG16 computes what the model computes (else its maps explain
    another function), and the map is of the last convolution, at that layer's resolution."""
    from shared.data.pipeline import decode_resize
    from shared.training.runs import trained_run

    run = trained_run(every_model, model.value)
    keras_model = load_trained(every_model.model_dir(model.value) / MODEL_FILE)
    explain = gradcam.explainer(keras_model)
    images = np.stack([decode_resize(str(p), run.image_size).numpy() for p in _test_images(every_model)[:6]])
    cams, p_dog = gradcam.grad_cam(explain, images)
    assert np.allclose(p_dog, np.asarray(keras_model.predict(images, verbose=0)).ravel(), atol=1e-5)
    assert cams.shape[0] == len(images) and np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
    if SPECS[model].uses_vgg16:
        assert explain.layer == "vgg16/block5_conv3" and cams.shape[1:] == (VGG_SIZE // 16, VGG_SIZE // 16)
    else:
        from tensorflow import keras

        convs = [layer.name for layer in keras_model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert explain.layer == convs[-1] and len(convs) == 5


def test_cells_sit_at_their_receptive_fields_centres():
    """Valid convolutions shave the border: the scratch convnet's last map at 128px has its centres at
    38.5 + 16 i (worked out by hand from 5 valid 3x3 convolutions and 4 poolings), VGG16's block5 at 7.5 + 16 i."""
    from tensorflow import keras

    from shared.training.models import build_scratch, conv_base

    def upto_last_conv(layers):
        last = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)][-1]
        return layers[:last + 1]

    assert gradcam._geometry(upto_last_conv(build_scratch(image_size=128).layers)) == (38.5, 16)
    assert gradcam._geometry(upto_last_conv(conv_base(weights=None, image_size=None).layers)) == (7.5, 16)
    cam = np.zeros((4, 4))
    cam[1, 2] = 1.0
    heat = gradcam.upsample(cam, geometry=(38.5, 16), size=128, height=128, width=128)
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(row - (38.5 + 16)) <= 1 and abs(col - (38.5 + 32)) <= 1  # the hot cell where its field is
    assert heat[:, :10].max() == 0 and heat[:10].max() == 0  # no heat drawn where no cell looks


@pytest.mark.slow
def test_explain_command_writes_a_picture_per_image_and_says_what_it_saw(every_model, tmp_path):
    images = _test_images(every_model)[:2]
    result = jobs(every_model, "explain", "--model", "fine-tune", *map(str, images))
    assert result.returncode == 0, result.stderr[-1500:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for image, line in zip(images, lines, strict=True):
        path, label, p_dog, written = line.split("\t")
        assert path == str(image) and label in ("cat", "dog") and p_dog.startswith("p_dog=")
        assert (float(p_dog.removeprefix("p_dog=")) > 0.5) == (label == "dog")
        from PIL import Image

        with Image.open(written) as shown, Image.open(image) as original:  # the photo's proportions, not a square
            assert shown.format == "PNG"
            assert abs(shown.width / shown.height - original.width / original.height) < 0.02
        assert Path(written).parent == every_model.reports / "explained" / "fine-tune-seed-1337"


@pytest.mark.slow
def test_explain_bad_input_gets_one_line_and_the_contract_code(every_model, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = _test_images(every_model)[0]
    result = jobs(every_model, "explain", "--model", "scratch", str(text), str(good), "--out", str(tmp_path / "out"))
    assert "cannot explain" in result.stderr and str(text) in result.stderr
    assert "1 of 2 files could not be explained" in one_error(result, 3)
    assert (tmp_path / "out" / f"{good.stem}.gradcam.png").is_file()  # the readable one is still explained
    one_error(jobs(every_model, "explain", "--model", "scratch", "--seed", "7", str(good)), 3)  # not trained
    unknown = jobs(every_model, "explain", "--model", "scratch-small", str(good))
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


EARS_SIZE, EARS_TRAIN, EARS_HELD_OUT = 160, 600, 100  # per class; about 81% test accuracy after 8 epochs


@pytest.fixture(scope="module")
def ears(tmp_path_factory) -> Volume:
    """The scratch convnet trained on enough of the stand-in to decide by the ears (its last map: 6x6)."""
    from shared.data.fetch import FetchConfig, fetch
    from shared.data.split import SplitConfig, split

    root = tmp_path_factory.mktemp("ears") / "volume"
    fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=EARS_TRAIN + 2 * EARS_HELD_OUT))
    split(config=SplitConfig(data_dir=root, train=EARS_TRAIN, validation=EARS_HELD_OUT, test=EARS_HELD_OUT))
    train(config=TrainConfig(data_dir=root, model=ModelName.scratch, epochs=8, image_size=EARS_SIZE, batch_size=32))
    return Volume(root)


def evidence(maps, boxes, *, geometry, size) -> tuple[float, float]:
    """(the share of images whose map puts at least twice the head box's share of the picture inside it,
    the median of each map's mass in the box over that of a flat map of the same cells).

    The second number is the fair one: the scratch convnet's last cells look only at the middle of the
    picture (valid convolutions), where heads mostly are, so a flat map of them already passes the first
    test for most images; only a map that follows each image's head beats the flat one."""
    inside = np.array([gradcam.mass_inside(m, b, geometry=geometry, size=size)
                       for m, b in zip(maps, boxes, strict=True)])
    flat = np.array([gradcam.mass_inside(np.ones_like(maps[0]), b, geometry=geometry, size=size) for b in boxes])
    share = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes])
    return float(np.mean(inside >= 2 * share)), float(np.median(inside / flat))


def points_at_heads(maps, boxes, *, geometry, size) -> bool:
    most, over_flat = evidence(maps, boxes, geometry=geometry, size=size)
    return most > 0.5 and over_flat >= 1.2


@pytest.mark.slow
def test_the_heat_map_points_at_the_ears_and_a_wrong_map_does_not(ears):
    """Issue 28: on the stand-in the class is in the head (ears up: cat; hanging, and a muzzle: dog). Maps of
    noise, of another image, or of the first convolution fail the same test."""
    from tensorflow import keras

    from shared.data.pipeline import list_files, subset_dataset
    from shared.data.synthetic import head_box

    model = load_trained(ears.model_dir("scratch") / MODEL_FILE)
    explain = gradcam.explainer(model)
    files, _ = list_files(volume=ears, subset="test")
    boxes = []
    for f in files:
        label, index, _ = Path(f).name.split(".")
        boxes.append(head_box(seed=0, index=int(index), label=label))  # fetch's default seed
    images = np.concatenate([x.numpy() for x, _ in subset_dataset(volume=ears, subset="test", image_size=EARS_SIZE,
                                                                  batch_size=50)])
    maps, _ = gradcam.grad_cam(explain, images)
    at = {"geometry": explain.geometry, "size": EARS_SIZE}
    assert points_at_heads(maps, boxes, **at), evidence(maps, boxes, **at)
    noise = np.random.default_rng(0).random(maps.shape)
    assert not points_at_heads(noise, boxes, **at), evidence(noise, boxes, **at)
    shifted = np.roll(maps, 7, axis=0)  # each image gets another image's map
    assert not points_at_heads(shifted, boxes, **at), evidence(shifted, boxes, **at)
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    wrong = gradcam.Explainer(first.name, _graph(model, first), explain.kernel, explain.bias,
                              gradcam._geometry(model.layers[:model.layers.index(first) + 1]))
    early, _ = gradcam.grad_cam(wrong, images)
    assert not points_at_heads(early, boxes, geometry=wrong.geometry, size=EARS_SIZE)


def _graph(model, layer):
    from tensorflow import keras

    graph = keras.Model(model.inputs, [layer.output, model.layers[-1].input])
    return lambda x: graph(x, training=False)
