"""What a new user meets first: hints that work where they are, predict without --model, the VGG16 download
lock only for downloads, a volume the image's user cannot write, and no writable /tmp."""

import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.core.errors import PermanentError
from shared.core.hints import run_hint, train_hint
from shared.training.runs import TrainRun
from shared.volume.fsutil import write_json
from shared.volume.layout import COMPLETE, Volume

runner = CliRunner()


def test_hints_name_the_make_target_only_under_make(monkeypatch):
    assert train_hint("scratch") == "`catsdogs train --model scratch --with-prerequisite`"
    assert train_hint("scratch", force=True) == "`catsdogs train --model scratch --force`"
    monkeypatch.setenv("MAKELEVEL", "1")
    assert train_hint("fine-tune") == "`make train-fine-tune`"
    assert train_hint("scratch", force=True) == "`make train-scratch FORCE=1`"
    assert run_hint("split", "make split") == "`make split`"


def _trained(vol: Volume, model: str, *, val_loss: float, split: str = "abc") -> None:
    """A finished model folder as training leaves it, without training (choose_model reads only this)."""
    folder = vol.model_dir(model)
    run = TrainRun(model=model, epochs=1, batch_size=8, image_size=80, learning_rate=None, seed=1, weights=None,
                   deterministic=True, precision="float32", xla=None, split=split)
    write_json(folder / "config.json", {"run": asdict(run)})
    write_json(folder / "best.json", {"epoch": 1, "val_loss": val_loss})
    (folder / COMPLETE).write_text("done\n")


def test_predict_picks_fine_tune_else_the_lowest_validation_loss(tmp_path):
    from shared.reports.predict import choose_model

    vol = Volume(tmp_path)
    with pytest.raises(PermanentError, match="no trained model.*catsdogs train --model scratch"):
        choose_model(vol)
    write_json(vol.split_manifest, {"fingerprint": "abc"})
    _trained(vol, "scratch", val_loss=0.61)
    _trained(vol, "scratch-augmented", val_loss=0.42)
    _trained(vol, "feature-extraction", val_loss=0.10, split="another")  # better, but on another split
    model, why = choose_model(vol)
    assert model == "scratch-augmented" and "0.4200" in why and "fine-tune is not trained" in why
    _trained(vol, "fine-tune", val_loss=0.9)
    assert choose_model(vol)[0] == "fine-tune"


@pytest.mark.slow
def test_predict_without_model_says_which_it_used(fetched, tmp_path):
    from shared.data.split import SplitConfig, split
    from shared.training.catalog import ModelName
    from shared.training.train import TrainConfig, train

    split(config=SplitConfig(data_dir=fetched, train=6, validation=4, test=2))
    train(config=TrainConfig(data_dir=fetched, model=ModelName.scratch, epochs=1, image_size=80, batch_size=4))
    image = Volume(fetched).raw_images / "cat.30.jpg"
    result = runner.invoke(app, ["predict", "--data-dir", str(fetched), str(image)])
    assert result.exit_code == 0, result.output
    assert "predict: using scratch" in result.stderr and result.stdout.startswith(str(image))


def test_vgg16_download_lock_only_when_downloading(monkeypatch, tmp_path):
    from shared.training.models import conv_base
    from shared.volume import locks

    def no_lock():
        raise AssertionError("the download lock was taken with nothing to download")

    monkeypatch.setattr(locks, "keras_download_lock", no_lock)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    base = conv_base(weights=None, image_size=32)  # random weights: no lock
    base.save_weights(tmp_path / "vgg.weights.h5")
    conv_base(weights=str(tmp_path / "vgg.weights.h5"), image_size=32)  # a weights file: no lock either
    monkeypatch.setattr(locks, "keras_download_lock", lambda: pytest.fail("downloaded weights already there"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # should Keras try to download again: fails at once
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    with pytest.raises(PermanentError, match="cannot get the VGG16 ImageNet weights"):
        conv_base(weights="imagenet", image_size=32)  # present (here garbled): read, no lock taken


def test_a_permission_error_keeps_its_own_message(monkeypatch, tmp_path):
    from shared.training.models import conv_base
    from shared.volume import locks

    def denied():
        raise PermissionError(13, "Permission denied", "/data/keras/download.lock")

    monkeypatch.setattr(locks, "keras_download_lock", denied)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(PermanentError) as error:
        conv_base(weights="imagenet", image_size=32)
    assert "Permission denied" in str(error.value) and "/data/keras/download.lock" in str(error.value)
    assert "network" not in str(error.value)


def test_no_writable_temporary_folder_exits_3_naming_the_flag(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(tmp_path / "missing")])
    result = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "vol")])
    assert result.exit_code == 3
    assert result.stderr.startswith("error: no writable temporary folder") and "--tmpfs /tmp" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="taking the image's uid 10001 needs root")
def test_doctor_names_what_the_images_user_cannot_write_and_the_fix(tmp_path, monkeypatch):
    """As uid 10001 (the kernel's own permission check) on a folder root made, as Docker makes a missing
    bind-mount folder, with a keras/ folder root wrote into it."""
    from shared.training import doctor

    volume = Path(tempfile.mkdtemp(prefix="catsdogs-root-volume-"))  # pytest's tmp is 0700: use /tmp
    try:
        volume.chmod(0o755)
        (volume / "keras").mkdir()
        monkeypatch.setenv("KERAS_HOME", str(volume / "keras"))

        def as_10001():
            os.setegid(10001)
            os.seteuid(10001)
            try:
                return doctor.not_writable(Volume(volume))
            finally:
                os.seteuid(0)
                os.setegid(0)

        assert as_10001() == [str(volume), str(volume / "keras")]
        problem = doctor.volume_problem({"volume": {"not_writable": as_10001()}})
        assert str(volume / "keras") in problem and "chown -R 10001:10001" in problem and "--user" in problem
        with monkeypatch.context() as patched:  # the CLI's wiring: that problem is one line and exit 3
            patched.setattr(doctor, "not_writable", lambda vol: [str(volume)])
            result = runner.invoke(app, ["doctor", "--data-dir", str(volume)])
        assert result.exit_code == 3 and result.stderr.startswith("error: not writable by uid")
        for path in (volume, volume / "keras"):
            os.chown(path, 10001, 10001)
        assert as_10001() == []
    finally:
        subprocess.run(["rm", "-rf", str(volume)], check=False)
