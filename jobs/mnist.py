"""MNIST: the chapter's opening convnet (or the same net without max-pooling), trained and tested."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs._cli import DataDir, data_dir, keras_home_on_volume, new_app, run, stage
from jobs._options import bounded
from shared.core.seeds import DEFAULT_SEED
from shared.training.mnist import MnistNet

app = new_app(__doc__)


@app.command("mnist", help=__doc__)
@stage
def main(
    model: Annotated[MnistNet, typer.Option(
        help="convnet (the seed's, 104,202 parameters) or no-max-pool (the same without pooling, 712,202).")
    ] = MnistNet.convnet,
    data: DataDir = None,
    source: Annotated[str, typer.Option(
        help="'keras' (keras.datasets.mnist, cached on the volume), 'synthetic' (generated digits, no network), "
             "or the path of an mnist.npz in Keras's format.")] = "keras",
    samples: Annotated[int, bounded(
        "mnist_samples", help="Training images of --source synthetic; a sixth as many test images.")] = 6000,
    epochs: Annotated[int, bounded("mnist_epochs", help="Epochs (the seed's: 5).")] = 5,
    batch_size: Annotated[int, bounded("mnist_batch_size", help="Batch size (the seed's: 64).")] = 64,
    seed: Annotated[int, bounded(
        "seed", help="Seed of the weights, the shuffling and the generated digits.")] = DEFAULT_SEED,
    force: Annotated[bool, typer.Option("--force", help="Train and test again even if done.")] = False,
) -> None:
    root = data_dir(data)
    keras_home_on_volume(root)
    from shared.orchestration.mnist import run_mnist
    from shared.training.mnist import MnistConfig
    from shared.volume.layout import Volume

    run_mnist(config=MnistConfig(data_dir=root, model=model, source=source, samples=samples, epochs=epochs,
                                 batch_size=batch_size, seed=seed, force=force))
    print(f"report: {Volume(root).reports / 'mnist.md'}")


if __name__ == "__main__":
    run(app)
