"""fetch --source kaggle through the real kaggle client against a loopback stand-in for Kaggle."""

import random
import time
import zipfile

import pytest

from shared.core.errors import EXIT_PERMANENT, EXIT_RETRYABLE, PermanentError, RetryableError
from shared.data import synthetic
from shared.data.fetch import FetchConfig, fetch
from shared.volume.layout import Volume
from tests.fake_kaggle import DOWNLOAD, FakeKaggle

PER_CLASS = 6


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("kaggle-archive")
    path = synthetic.write_archive(path=d / "a.zip", per_class=PER_CLASS, seed=7, scratch=d / "s")
    # Like the real archive it has a test1.zip beside train.zip; 3 MB more make the client write a partial
    # file before a cut (it writes in 1 MB chunks).
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr("padding.bin", random.Random(1).randbytes(3 << 20))
    return path.read_bytes()


@pytest.fixture
def kaggle_env(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-123")
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the client's own backoff, and ours
    # The real competition has 12,500 images per class; the stand-in archive has fewer.
    monkeypatch.setattr("shared.data.fetch.KAGGLE_PER_CLASS", PER_CLASS)
    return monkeypatch


def _serve(kaggle_env, fake: FakeKaggle) -> FakeKaggle:
    kaggle_env.setenv("HTTP_PROXY", fake.proxy)
    kaggle_env.setenv("http_proxy", fake.proxy)
    return fake


def _config(tmp_path, **kw) -> FetchConfig:
    return FetchConfig(data_dir=tmp_path / "vol", source="kaggle", backoff_s=0.0, **kw)


def _assert_nothing_usable(tmp_path):
    vol = Volume(tmp_path / "vol")
    assert not vol.raw_manifest.exists()
    assert not vol.raw_images.exists()
    assert not vol.archive.exists()


def test_download_is_byte_identical_and_extracted(tmp_path, kaggle_env, archive_bytes):
    with _serve(kaggle_env, FakeKaggle(archive_bytes)) as fake:
        manifest = fetch(config=_config(tmp_path))
    vol = Volume(tmp_path / "vol")
    assert vol.archive.read_bytes() == archive_bytes
    assert manifest["identity"]["source"] == "kaggle"
    assert manifest["images"] == {"cat": PER_CLASS, "dog": PER_CLASS}
    assert sorted(p.name for p in vol.raw_images.iterdir())[:2] == ["cat.0.jpg", "cat.1.jpg"]
    post = [entry for entry in fake.log if entry[0] == "POST"]
    assert post[0][1] == DOWNLOAD and b"dogs-vs-cats" in post[0][3]
    assert post[0][2].get("Authorization", "").startswith("Basic ")


def test_second_run_is_a_no_op(tmp_path, kaggle_env, archive_bytes, capsys):
    with _serve(kaggle_env, FakeKaggle(archive_bytes)) as fake:
        fetch(config=_config(tmp_path))
        before = len(fake.log)
        fetch(config=_config(tmp_path))
        assert len(fake.log) == before
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("status, words", [
    (401, "rejected the credentials"),
    (403, "https://www.kaggle.com/c/dogs-vs-cats/rules"),
    (404, "no competition"),
])
def test_permanent_http_errors(tmp_path, kaggle_env, archive_bytes, status, words):
    with _serve(kaggle_env, FakeKaggle(archive_bytes, post_errors=[status] * 10)) as fake:
        with pytest.raises(PermanentError, match=words) as err:
            fetch(config=_config(tmp_path))
        assert len([e for e in fake.log if e[0] == "POST"]) == 1  # never retried
    assert err.value.exit_code == EXIT_PERMANENT
    assert "secret-key-123" not in str(err.value)
    _assert_nothing_usable(tmp_path)


def test_503_is_retried_then_succeeds(tmp_path, kaggle_env, archive_bytes):
    with _serve(kaggle_env, FakeKaggle(archive_bytes, post_errors=[503, 503])) as fake:
        fetch(config=_config(tmp_path, retries=3))
    assert len([e for e in fake.log if e[0] == "POST"]) == 3
    assert Volume(tmp_path / "vol").archive.read_bytes() == archive_bytes


def test_persistent_503_ends_retryable(tmp_path, kaggle_env, archive_bytes):
    with _serve(kaggle_env, FakeKaggle(archive_bytes, post_errors=[503] * 10)) as fake:
        with pytest.raises(RetryableError, match="503") as err:
            fetch(config=_config(tmp_path, retries=2))
    assert len([e for e in fake.log if e[0] == "POST"]) == 3
    assert err.value.exit_code == EXIT_RETRYABLE
    _assert_nothing_usable(tmp_path)


def test_truncated_body_resumes_with_range(tmp_path, kaggle_env, archive_bytes):
    with _serve(kaggle_env, FakeKaggle(archive_bytes, truncated_gets=1)) as fake:
        fetch(config=_config(tmp_path))
    gets = [e for e in fake.log if e[0] == "GET"]
    assert len(gets) == 2 and gets[1][2].get("Range", "").startswith("bytes=")
    assert Volume(tmp_path / "vol").archive.read_bytes() == archive_bytes


def test_always_truncated_body_leaves_only_a_staged_partial(tmp_path, kaggle_env, archive_bytes):
    with _serve(kaggle_env, FakeKaggle(archive_bytes, truncated_gets=100)):
        with pytest.raises(RetryableError):
            fetch(config=_config(tmp_path, retries=0))
    _assert_nothing_usable(tmp_path)
    partial = Volume(tmp_path / "vol").downloads / "dogs-vs-cats.zip"
    assert 0 < partial.stat().st_size < len(archive_bytes)
    # The next run resumes from the partial file and completes.
    with _serve(kaggle_env, FakeKaggle(archive_bytes)) as fake:
        fetch(config=_config(tmp_path))
    assert Volume(tmp_path / "vol").archive.read_bytes() == archive_bytes
    assert fake.log[-1][2].get("Range", "").startswith("bytes=")


def test_no_credentials(tmp_path, kaggle_env, archive_bytes):
    kaggle_env.delenv("KAGGLE_USERNAME")
    kaggle_env.delenv("KAGGLE_KEY")
    with _serve(kaggle_env, FakeKaggle(archive_bytes)) as fake:
        with pytest.raises(PermanentError, match="no Kaggle credentials"):
            fetch(config=_config(tmp_path))
        assert fake.log == []
    _assert_nothing_usable(tmp_path)


def test_kaggle_json_credentials_are_used(tmp_path, kaggle_env, archive_bytes):
    import json
    import os
    from pathlib import Path

    kaggle_env.delenv("KAGGLE_USERNAME")
    kaggle_env.delenv("KAGGLE_KEY")
    config = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"username": "fromfile", "key": "k"}))
    try:
        with _serve(kaggle_env, FakeKaggle(archive_bytes)) as fake:
            fetch(config=_config(tmp_path))
    finally:
        config.unlink()
    assert fake.log[0][2]["Authorization"].startswith("Basic ")


def test_no_network(tmp_path, kaggle_env):
    kaggle_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    kaggle_env.setenv("http_proxy", "http://127.0.0.1:9")
    with pytest.raises(PermanentError, match="no network"):
        fetch(config=_config(tmp_path))
    _assert_nothing_usable(tmp_path)


def test_corrupt_download_is_removed_and_retryable(tmp_path, kaggle_env, archive_bytes):
    broken = bytearray(archive_bytes)
    broken[len(broken) // 2] ^= 0xFF  # a flipped byte inside an image: the CRC check catches it
    with _serve(kaggle_env, FakeKaggle(bytes(broken))):
        with pytest.raises(RetryableError, match="corrupt"):
            fetch(config=_config(tmp_path))
    _assert_nothing_usable(tmp_path)
    assert not (Volume(tmp_path / "vol").downloads / "dogs-vs-cats.zip").exists()
    assert zipfile.is_zipfile(__import__("io").BytesIO(archive_bytes))
