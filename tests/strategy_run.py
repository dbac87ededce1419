"""Run by test_gpu.py in a fresh process (logical devices must be set before TensorFlow starts):
train every model for one epoch under a strategy and print what was recorded, as JSON."""

import json
import sys
from pathlib import Path

from shared.training.catalog import SPECS
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume


def same_order() -> dict:
    """The seed's scratch net, one epoch on the same batches in the same order, single against mirrored."""
    import numpy as np
    from tensorflow import keras

    from shared.training.models import build_scratch
    from shared.training.strategy import place

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (32, 80, 80, 3)).astype("float32"), rng.integers(0, 2, (32, 1)).astype("float32")
    out = {}
    for name in ("single", "mirrored"):
        keras.utils.set_random_seed(1)
        with place(name).strategy.scope():
            model = build_scratch(image_size=80)
        out[name] = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    return out


def full_val_loss(folder: Path, root: str, size: int) -> float:
    """The saved model.keras, the whole network, on the validation images (outside any strategy)."""
    from tensorflow import keras

    from shared.data.pipeline import subset_dataset

    data = subset_dataset(volume=Volume(Path(root)), subset="validation", image_size=size, batch_size=8)
    return keras.models.load_model(folder / "model.keras").evaluate(data, verbose=0)[0]


def main(root: str, strategy: str) -> None:
    out = {}
    for spec in SPECS.values():
        size = 80 if not spec.uses_vgg16 else 32
        folder = train(config=TrainConfig(data_dir=Path(root), model=spec.name, epochs=1, image_size=size,
                                          batch_size=8, weights="none", strategy=strategy, force=True))
        config = read_json(folder / "config.json")
        out[spec.name.value] = {"config": config["strategy"], "validation": config["validation"],
                                "history": read_json(folder / "history.json"),
                                "full_val_loss": None if spec.on_features else full_val_loss(folder, root, size)}
    out["same-order"] = same_order()
    print("RESULT " + json.dumps(out))
    assert Volume(Path(root)).model_dir("fine-tune").exists()


if __name__ == "__main__":
    main(*sys.argv[1:])
