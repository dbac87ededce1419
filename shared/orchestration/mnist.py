"""The MNIST stage: train the net (or reuse or resume it), score it, and rewrite reports/mnist.md."""

from __future__ import annotations

from shared.core.console import say
from shared.data.mnist_data import load
from shared.reports.mnist_report import evaluate_net, write_summary
from shared.training.mnist import MnistConfig, MnistNet, MnistRun, train_net, trained
from shared.volume.layout import Volume


def run_mnist(*, config: MnistConfig) -> dict:
    """Train (or resume, or reuse) the net, test it, write its report and reports/mnist.md."""
    vol = Volume(config.data_dir)
    net = MnistNet(config.model)
    data = load(source=config.source, synthetic_path=vol.mnist / f"synthetic-{config.samples}-{config.seed}.npz",
                samples=config.samples, seed=config.seed)
    run = MnistRun(model=net.value, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                   data=data.source["sha256"])
    with vol.lock(f"mnist-{net.value}", what=f"mnist {net.value}"):
        if config.force or not trained(vol, run):
            train_net(vol=vol, run=run, data=data)
        else:
            say(f"mnist {net.value} is already trained at {vol.mnist_model_dir(net.value)} (--force retrains it)")
        report = evaluate_net(vol=vol, net=net, data=data, force=config.force)
        write_summary(vol)
    return report
