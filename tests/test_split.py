"""split: the seed's index ranges, manifest, corrupt images, idempotence, --force."""

import hashlib

import pytest

from shared.core.errors import PermanentError, UsageError
from shared.data.split import SplitConfig, split
from shared.volume.fsutil import read_json
from shared.volume.layout import CLASSES, SUBSETS, Volume

SIZES = {"train": 10, "validation": 5, "test": 10}


def _split(root, **kw):
    return split(config=SplitConfig(data_dir=root, **{**SIZES, **kw}))


def test_counts_ranges_and_manifest(fetched):
    manifest = _split(fetched)
    vol = Volume(fetched)
    assert manifest["counts"] == {s: {c: SIZES[s] for c in CLASSES} for s in SUBSETS}
    assert sorted(p.name for p in vol.subset("validation").joinpath("dog").iterdir()) == \
        sorted(f"dog.{i}.jpg" for i in range(10, 15))
    assert sorted(p.name for p in vol.subset("test").joinpath("cat").iterdir()) == \
        sorted(f"cat.{i}.jpg" for i in range(15, 25))
    on_disk = read_json(vol.split_manifest)
    assert on_disk == manifest
    entry = on_disk["files"]["train"]["cat"][3]
    assert entry["sha256"] == hashlib.sha256((vol.subset("train") / "cat" / entry["name"]).read_bytes()).hexdigest()
    assert on_disk["params"]["source"]["source"] == "synthetic"
    assert "generated stand-in" in on_disk["source"]


def test_defaults_are_the_seeds():
    config = SplitConfig(data_dir=None)
    assert (config.train, config.validation, config.test) == (1000, 500, 1000)


def test_deterministic(fetched, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(fetched, other)
    assert _split(fetched)["fingerprint"] == _split(other)["fingerprint"]
    assert _split(fetched)["files"] == _split(other)["files"]


def test_same_parameters_is_a_no_op(fetched, capsys):
    _split(fetched)
    mtime = Volume(fetched).split_manifest.stat().st_mtime_ns
    _split(fetched)
    assert Volume(fetched).split_manifest.stat().st_mtime_ns == mtime
    assert "nothing to do" in capsys.readouterr().out


def test_other_parameters_need_force(fetched):
    _split(fetched)
    with pytest.raises(PermanentError, match="--force"):
        _split(fetched, train=12)
    assert read_json(Volume(fetched).split_manifest)["params"]["train"] == 10
    manifest = _split(fetched, train=12, force=True)
    assert manifest["counts"]["train"]["cat"] == 12
    assert len(list(Volume(fetched).subset("train").joinpath("cat").iterdir())) == 12
    assert not list(Volume(fetched).staging.glob("split-*"))


def test_missing_images_are_counted_and_named(fetched):
    (Volume(fetched).raw_images / "dog.3.jpg").unlink()
    (Volume(fetched).raw_images / "cat.35.jpg").unlink()
    with pytest.raises(PermanentError) as err:
        _split(fetched, train=30, validation=5, test=5)  # 40 per class, 40 fetched
    assert str(err.value).startswith("2 of the 80 images the split needs are missing")
    assert str(err.value).endswith(": cat.35.jpg, dog.3.jpg")
    assert not Volume(fetched).subsets.exists()


def test_more_than_was_fetched_is_a_usage_error_at_once(fetched):
    with pytest.raises(UsageError, match="= 45 images per class, but the fetched data has 40 per class"):
        _split(fetched, train=30, validation=5, test=10)
    with pytest.raises(UsageError):  # found at once, however large (no loop over the indices)
        _split(fetched, train=10**12, validation=5, test=10)
    assert not Volume(fetched).subsets.exists()


def test_corrupt_image_fails_and_is_named(fetched):
    (Volume(fetched).raw_images / "cat.7.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(PermanentError, match=r"cat\.7\.jpg does not decode.*--skip-corrupt"):
        _split(fetched)
    assert not Volume(fetched).subsets.exists()
    assert not list(Volume(fetched).staging.glob("split-*"))


def test_skip_corrupt_substitutes_the_next_unused_index(fetched):
    raw = Volume(fetched).raw_images
    good = raw.joinpath("cat.3.jpg").read_bytes()
    raw.joinpath("cat.7.jpg").write_bytes(good[: len(good) // 3])  # truncated
    raw.joinpath("cat.25.jpg").write_bytes(b"garbage")  # the first spare is corrupt too
    manifest = _split(fetched, skip_corrupt=True)
    assert manifest["substitutions"] == [
        {"subset": "train", "class": "cat", "corrupt": "cat.7.jpg", "replaced_by": "cat.25.jpg"},
        {"subset": "train", "class": "cat", "corrupt": "cat.25.jpg", "replaced_by": "cat.26.jpg"},
    ]
    names = {f["name"] for f in manifest["files"]["train"]["cat"]}
    assert "cat.7.jpg" not in names and "cat.26.jpg" in names and len(names) == 10
    assert manifest["counts"]["train"]["cat"] == 10


def test_requires_fetch_first(tmp_path):
    with pytest.raises(PermanentError, match="run the fetch stage first"):
        _split(tmp_path)
