"""fetch from a local archive or folder, the generated stand-in, safe extraction and interruptions."""

import json
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from shared.core.errors import PermanentError
from shared.data import archive as arc
from shared.data import synthetic
from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.volume.layout import Volume


def _image_bytes(fetched: Path, name: str = "cat.0.jpg") -> bytes:
    return (Volume(fetched).raw_images / name).read_bytes()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_synthetic_is_kaggle_format_and_varied(fetched):
    vol = Volume(fetched)
    with zipfile.ZipFile(vol.archive) as outer:
        assert "train.zip" in outer.namelist()
    from PIL import Image

    sizes = set()
    for p in sorted(vol.raw_images.iterdir())[:20]:
        with Image.open(p) as im:
            assert im.format == "JPEG"
            assert all(synthetic.MIN_SIDE <= side <= synthetic.MAX_SIDE for side in im.size)
            sizes.add(im.size)
    assert len(sizes) > 10  # varied, like real photos


def test_synthetic_is_deterministic(tmp_path):
    import time

    a = synthetic.write_archive(path=tmp_path / "a.zip", per_class=3, seed=5, scratch=tmp_path / "s")
    time.sleep(2.1)  # zip timestamps have a 2-second resolution: the archives must not depend on the clock
    b = synthetic.write_archive(path=tmp_path / "b.zip", per_class=3, seed=5, scratch=tmp_path / "s")
    c = synthetic.write_archive(path=tmp_path / "c.zip", per_class=3, seed=6, scratch=tmp_path / "s")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(c) as zc:
        assert za.namelist() == zc.namelist() == ["train.zip", "test1.zip", "sampleSubmission.csv"]


def test_kaggle_s_unlabeled_test_set_is_kept_apart_with_its_sample_submission(fetched):
    """test1/<id>.jpg and sampleSubmission.csv, as Kaggle's archive has them; the answers stay out of it."""
    import csv

    vol = Volume(fetched)
    manifest = json.loads(vol.raw_manifest.read_text())
    count = synthetic.test1_count(manifest["identity"]["per_class"])
    assert manifest["test1"] == {"images": count, "sample_submission": True}
    assert sorted(int(p.stem) for p in vol.test1.iterdir()) == list(range(1, count + 1))
    with open(vol.sample_submission) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == list(range(1, count + 1))
    labels = {synthetic.test1_label(seed=0, image_id=i) for i in range(1, count + 1)}
    assert labels == {"cat", "dog"}  # both classes, decided by the generator, written nowhere on the volume
    assert not any("label" in p.name or "answer" in p.name for p in vol.raw.rglob("*"))
    assert not (vol.subsets.exists() and any(vol.subsets.rglob("1.jpg")))  # the split never takes them


@pytest.mark.parametrize("kind", ["outer zip", "train.zip", "folder", "train folder"])
def test_local_sources(tmp_path, fetched, kind):
    vol = Volume(fetched)
    if kind == "outer zip":
        source = vol.archive
    elif kind == "train.zip":
        with zipfile.ZipFile(vol.archive) as zf:
            source = tmp_path / "train.zip"
            source.write_bytes(zf.read("train.zip"))
    elif kind == "folder":
        source = vol.raw_images
    else:
        source = tmp_path / "kaggle-extracted"
        shutil.copytree(vol.raw_images, source / "train")
    target = tmp_path / "target"
    manifest = fetch(config=FetchConfig(data_dir=target, source=str(source)))
    assert manifest["identity"]["source"] == "local archive"
    assert _names(Volume(target).raw_images) == _names(vol.raw_images)
    assert (Volume(target).raw_images / "dog.7.jpg").read_bytes() == _image_bytes(fetched, "dog.7.jpg")


def test_missing_local_source(tmp_path):
    with pytest.raises(PermanentError, match="no such file"):
        fetch(config=FetchConfig(data_dir=tmp_path, source=str(tmp_path / "nope.zip")))


def test_not_a_dogs_vs_cats_archive(tmp_path):
    bad = tmp_path / "other.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(PermanentError, match="not a Dogs vs. Cats archive"):
        fetch(config=FetchConfig(data_dir=tmp_path / "vol", source=str(bad)))


def test_rerun_is_a_no_op_and_other_source_needs_force(fetched, capsys):
    before = Volume(fetched).raw_manifest.stat().st_mtime_ns
    fetch(config=FetchConfig(data_dir=fetched, source="synthetic", per_class=40))
    assert "nothing to do" in capsys.readouterr().out
    assert Volume(fetched).raw_manifest.stat().st_mtime_ns == before
    with pytest.raises(PermanentError, match="--force"):
        fetch(config=FetchConfig(data_dir=fetched, source="synthetic", per_class=12))
    manifest = fetch(config=FetchConfig(data_dir=fetched, source="synthetic", per_class=12, force=True))
    assert manifest["images"] == {"cat": 12, "dog": 12}
    assert len(_names(Volume(fetched).raw_images)) == 24


# --- safe extraction ---------------------------------------------------------------------------

def _zip_with(path: Path, name: str, data: bytes = b"x", *, link: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train/cat.0.jpg", b"jpeg")
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("name, link, words", [
    ("../../escaped.jpg", False, "escapes"),
    ("train/../../escaped.jpg", False, "escapes"),
    ("/tmp/escaped-absolute.jpg", False, "absolute"),
    ("train/dog.0.jpg", True, "symbolic link"),
])
def test_escaping_entries_are_refused(tmp_path, name, link, words):
    source = _zip_with(tmp_path / "evil.zip", name, b"/etc/passwd" if link else b"evil", link=link)
    target = tmp_path / "deep" / "vol"
    with pytest.raises(PermanentError, match=words):
        fetch(config=FetchConfig(data_dir=target, source=str(source)))
    assert not (tmp_path / "escaped.jpg").exists() and not (tmp_path / "deep" / "escaped.jpg").exists()
    assert not Path("/tmp/escaped-absolute.jpg").exists()
    assert not Volume(target).raw_images.exists() and not Volume(target).raw_manifest.exists()


def _declare_size(path: Path, size: int) -> None:
    """Rewrite every central-directory entry to declare `size` bytes, compressed and not (so no ratio)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<II", data, at + 20, size, size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def test_absurd_declared_size_is_refused(tmp_path):
    source = tmp_path / "bomb.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3):
            zf.writestr(f"train/cat.{i}.jpg", bytes(4 << 20))
    _declare_size(source, 0xFFFF0000)
    with zipfile.ZipFile(source) as zf, pytest.raises(PermanentError, match="absurd"):
        arc.check_members(zf, archive="bomb.zip")
    with pytest.raises(PermanentError, match="refusing"):
        fetch(config=FetchConfig(data_dir=tmp_path / "vol", source=str(source)))
    assert not Volume(tmp_path / "vol").raw_images.exists()


def test_compression_bomb_is_refused(tmp_path):
    source = tmp_path / "bomb.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/cat.0.jpg", bytes(64 << 20))
    with pytest.raises(PermanentError, match="expands"):
        fetch(config=FetchConfig(data_dir=tmp_path / "vol", source=str(source)))


# --- interruptions ----------------------------------------------------------------------------

def test_interrupted_extraction_leaves_nothing_visible(fetched, tmp_path, monkeypatch):
    source = Volume(fetched).archive
    target = tmp_path / "vol"
    real_copy, calls = arc._copy_member, []

    def dying_copy(*args, **kwargs):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt  # as good as a kill for what is on disk, minus the cleanup
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(arc, "_copy_member", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        fetch(config=FetchConfig(data_dir=target, source=str(source)))
    vol = Volume(target)
    assert not vol.raw_images.exists() and not vol.raw_manifest.exists()
    with pytest.raises(PermanentError, match="no fetched data"):
        split(config=SplitConfig(data_dir=target, train=2, validation=1, test=1))
    monkeypatch.setattr(arc, "_copy_member", real_copy)
    fetch(config=FetchConfig(data_dir=target, source=str(source)))
    assert len(_names(vol.raw_images)) == 80


def test_killed_run_leftovers_are_cleaned_and_never_used(fetched, tmp_path):
    """A SIGKILL skips every cleanup: stale staging folders and a raw/ without manifest remain."""
    vol = Volume(fetched)
    stale = vol.staging / "fetch-killed" / "train"
    stale.mkdir(parents=True)
    (stale / "cat.0.jpg").write_bytes(b"half")
    vol.raw_manifest.unlink()  # killed between renaming the images in and writing the manifest
    (vol.raw_images / "cat.1.jpg").write_bytes(b"garbage")
    with pytest.raises(PermanentError, match="no fetched data"):
        split(config=SplitConfig(data_dir=fetched, train=2, validation=1, test=1))
    fetch(config=FetchConfig(data_dir=fetched, source="synthetic", per_class=40))
    assert not (vol.staging / "fetch-killed").exists()
    assert (vol.raw_images / "cat.1.jpg").read_bytes() != b"garbage"
    assert vol.raw_manifest.exists()
