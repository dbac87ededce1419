"""make bench: the seed's code and this project's path for the same work, on one generated split, in one
process, in turn. Prints a table of ratios and writes bench.json. Not part of `make test`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from shared.data.fetch import FetchConfig, fetch  # noqa: E402
from shared.data.split import SplitConfig, split  # noqa: E402
from shared.volume.layout import Volume  # noqa: E402


def _median_rate(images: int, seconds: list[float]) -> float:
    return images / statistics.median(seconds)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _drain(data) -> int:
    n = 0
    for images, _ in data:
        n += int(images.shape[0])
    return n


def _volume(base: Path, name: str, source: Volume, sizes: tuple[int, int, int]) -> Volume:
    """A volume sharing `source`'s fetched images, with its own split of the given sizes."""
    vol = Volume(base / name)
    vol.root.mkdir(parents=True, exist_ok=True)
    if not vol.raw.exists():
        vol.raw.symlink_to(source.raw.resolve(), target_is_directory=True)
    split(config=SplitConfig(data_dir=vol.root, train=sizes[0], validation=sizes[1], test=sizes[2], force=True))
    return vol


def bench_input(vol: Volume, size: int, repeats: int) -> dict:
    from shared.data.pipeline import training_batches
    from tests.bench import seed_code

    seed_train = seed_code.datasets(vol.subsets, size)[0]
    n = _drain(seed_train)  # warm-up
    seed_epochs = [_timed(lambda: _drain(seed_train)) for _ in range(repeats + 1)]
    ours_first, ours_later = [], []
    for r in range(repeats):
        data, _ = training_batches(volume=vol, image_size=size, batch_size=32, seed=r, cache=True, first_epoch=0,
                                   epochs=1)
        ours_first.append(_timed(lambda d=data: _drain(d)))
    ours_later = [_timed(lambda: _drain(data)) for _ in range(repeats)]
    return {"images": n,
            "seed_epoch1": n / seed_epochs[0], "seed_later": _median_rate(n, seed_epochs[1:]),
            "ours_epoch1": _median_rate(n, ours_first), "ours_later": _median_rate(n, ours_later)}


def bench_features(vol: Volume, size: int, repeats: int) -> dict:
    from shared.data.split import load_manifest
    from shared.training.features import ensure_features, load_features
    from shared.volume.fsutil import remove
    from tests.bench import seed_code

    manifest = load_manifest(vol)
    subsets = seed_code.datasets(vol.subsets, size)
    conv_base = seed_code.conv_base_for(size)
    n = sum(_drain(d) for d in subsets)

    def seed_run():  # as the seed's script: build the base, then its per-batch loop over the three subsets
        base = seed_code.conv_base_for(size)
        for d in subsets:
            seed_code.get_features_and_labels(base, d)

    def ours_run():
        return ensure_features(volume=vol, split_manifest=manifest, weights="none", seed=0, image_size=size,
                               batch_size=32)

    def cached_run():
        store = ours_run()
        for s in ("train", "validation", "test"):
            x, y = load_features(store, s)
            _ = float(x.sum()) + float(y.sum())  # read every byte back

    seed_code.get_features_and_labels(conv_base, subsets[1].take(1))  # warm-ups
    remove(vol.features)
    ours_run()
    seed_times, ours_times, cached_times = [], [], []
    for _ in range(repeats):
        seed_times.append(_timed(seed_run))
        remove(vol.features)
        ours_times.append(_timed(ours_run))
        cached_times.append(_timed(cached_run))
    return {"images": n, "seed": _median_rate(n, seed_times), "ours_first": _median_rate(n, ours_times),
            "ours_cached": _median_rate(n, cached_times)}


class _EpochTimer:
    def __new__(cls):
        from tensorflow import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.start)

        return Timer()


def bench_training(vol: Volume, size: int, repeats: int, work: Path) -> dict:
    from tensorflow import keras

    from shared.data.pipeline import subset_dataset, training_batches
    from shared.training.callbacks import AtomicBestCheckpoint, EpochState
    from shared.training.models import build_scratch
    from tests.bench import seed_code

    epochs = repeats + 1  # the first epoch traces and compiles: not counted
    train_ds, val_ds, _ = seed_code.datasets(vol.subsets, size)
    n = _drain(train_ds)
    seed_model, seed_timer = seed_code.scratch_model(size), _EpochTimer()
    seed_model.fit(train_ds, epochs=epochs, validation_data=val_ds, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(filepath=str(work / "seed.keras"), save_best_only=True, monitor="val_loss"),
        seed_timer])
    keras.utils.set_random_seed(1337)
    train, steps = training_batches(volume=vol, image_size=size, batch_size=32, seed=1337, cache=True, first_epoch=0,
                                    epochs=epochs)
    val = subset_dataset(volume=vol, subset="validation", image_size=size, batch_size=32, cache=True)
    ours_model, ours_timer = build_scratch(image_size=size), _EpochTimer()
    (work / "ours").mkdir(exist_ok=True)
    ours_model.fit(train, steps_per_epoch=steps, epochs=epochs, validation_data=val, verbose=0, callbacks=[
        AtomicBestCheckpoint(work / "ours" / "model.keras", record=work / "ours" / "best.json"),
        EpochState(work / "ours", config={}, history={}), ours_timer])
    return {"images": n, "seed": _median_rate(n, seed_timer.times[1:]), "ours": _median_rate(n, ours_timer.times[1:]),
            "flops_per_image": training_flops(ours_model)}


def _wall(cmd: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_precision(main_vol: Volume, vgg_vol: Volume, size: int, repeats: int, epochs: int) -> dict:
    """Whole commands, as a user runs them, interleaved (A B C A B C ...): the seed's script, then ours in
    float32 and in --precision auto; the ratios are medians of each round's ratio."""
    from shared.training.precision import resolve_precision
    from shared.volume.fsutil import remove

    py = sys.executable
    train = [py, "-m", "jobs", "train", "--model", "scratch", "--epochs", str(epochs), "--image-size", str(size),
             "--force"]
    features = [py, "-m", "jobs", "train", "--model", "feature-extraction", "--epochs", "1", "--image-size",
                str(size), "--weights", "none", "--force"]
    commands = {
        "train_seed": [py, "-m", "tests.bench.seed_run", "train", str(main_vol.subsets), str(size), str(epochs)],
        "train_float32": [*train, "--precision", "float32", "--data-dir", str(main_vol.root)],
        "train_auto": [*train, "--precision", "auto", "--data-dir", str(main_vol.root)],
        "features_seed": [py, "-m", "tests.bench.seed_run", "features", str(vgg_vol.subsets), str(size)],
        "features_auto": [*features, "--precision", "auto", "--data-dir", str(vgg_vol.root)],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            if name.startswith("features"):
                remove(vgg_vol.features)  # cold: the store is computed in every round
            times[name].append(_wall(cmd))

    def ratio(slow: str, fast: str) -> float:
        return statistics.median(s / f for s, f in zip(times[slow], times[fast], strict=True))

    return {"auto": resolve_precision("auto"), "epochs": epochs, "seconds": times,
            "train_auto_vs_float32": ratio("train_float32", "train_auto"),
            "train_auto_vs_seed": ratio("train_seed", "train_auto"),
            "train_float32_vs_seed": ratio("train_seed", "train_float32"),
            "features_auto_vs_seed": ratio("features_seed", "features_auto")}


def training_flops(model) -> float:
    """Forward multiply-adds of the convolutions and dense layers, x2 for FLOPs, x3 for a training step."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * c_out * kh * kw * layer.input.shape[-1]
        elif kind == "Dense":
            macs += layer.input.shape[-1] * layer.units
    return 3 * 2 * macs


def matmul_flops(repeats: int) -> float:
    import tensorflow as tf

    n = 2048
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    run = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    run().numpy()
    times = [_timed(lambda: run().numpy()) for _ in range(max(repeats, 3))]
    return 2 * n**3 / statistics.median(times)


def peak_rss(stage: str, root: Path, *args: str) -> float:
    out = subprocess.run([sys.executable, "-m", "tests.bench.peak", stage, str(root), *args], check=True,
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", type=Path, default=Path(".bench"), help="where the generated data lives (reused)")
    p.add_argument("--per-class", type=int, default=500, help="training images per class of the main split")
    p.add_argument("--vgg-per-class", type=int, default=32, help="training images per class for VGG16")
    p.add_argument("--features-per-class", type=int, default=128,
                   help="training images per class of the whole-command VGG16 row (a few images would time "
                        "TensorFlow's start, not the extraction)")
    p.add_argument("--image-size", type=int, default=180)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--only", choices=["precision", "chain", "infer"], help="only those whole-command rows")
    p.add_argument("--infer-images", type=int, default=2000, help="JPEGs scored by the inference rows")
    p.add_argument("--rss-images", type=int, default=12500, help="JPEGs of infer's larger peak-memory run "
                   "(the smaller is a tenth: Kaggle's test1 against 1,250)")
    p.add_argument("--chain-per-class", type=int, default=100, help="training images per class of the VGG16 chain")
    p.add_argument("--chain-epochs", type=int, default=2, help="epochs of each of the chain's two models")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the whole-command training rows")
    args = p.parse_args(argv)
    n, v, size = args.per_class, args.vgg_per_class, args.image_size
    base = args.dir.resolve()
    source = Volume(base / "source")
    # enough for the largest split below: the main one, the whole-command VGG16 one, the peak-memory one
    per_class = max(2 * n, 2 * args.features_per_class, 16 * v, 2 * args.chain_per_class)
    if args.only == "infer":
        per_class = max(args.infer_images, args.rss_images) // 2 + 1
    fetch(config=FetchConfig(data_dir=source.root, source="synthetic", per_class=per_class))
    if args.only == "infer":
        return bench_inference(args, base, source, size)
    main_vol = _volume(base, "main", source, (n, n // 2, n // 2))
    f = args.features_per_class
    features_vol = _volume(base, "features", source, (f, f // 2, f // 2))
    results = {"config": vars(args) | {"dir": str(base), "out": str(args.out)}}
    if args.only in (None, "chain"):
        from shared.training.precision import resolve_precision
        from tests.bench.chain_bench import bench_chain, chain_rows, cpu_model

        c = args.chain_per_class
        print("benchmarking the VGG16 chain: the seed's two fits, cache on, off, --precision auto ...", flush=True)
        results["chain"] = bench_chain(_volume(base, "chain", source, (c, c // 2, c // 2)), size, args.repeats,
                                       args.chain_epochs, _wall)
        results["chain_table"] = chain_rows(results["chain"], resolve_precision("auto"), cpu_model())
        if args.only == "chain":
            args.out.write_text(json.dumps(results | {"table": results["chain_table"]}, indent=2))
            show(results["chain_table"], results)
            return results
    print("benchmarking whole commands: the seed's script, float32, --precision auto ...", flush=True)
    results["precision"] = bench_precision(main_vol, features_vol, size, args.repeats, args.epochs)
    results["precision"]["feature_images"] = 2 * (f + 2 * (f // 2))
    vgg_vol = _volume(base, "vgg", source, (v, v // 2, v // 2))
    if args.only == "precision":
        rows = precision_rows(results["precision"])
        args.out.write_text(json.dumps(results | {"table": rows}, indent=2))
        show(rows, results)
        return results
    print("benchmarking the input pipeline ...", flush=True)
    results["input"] = bench_input(main_vol, size, args.repeats)
    print("benchmarking VGG16 feature extraction ...", flush=True)
    results["features"] = bench_features(vgg_vol, size, args.repeats)
    print("benchmarking scratch training ...", flush=True)
    work = base / "train-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    results["training"] = bench_training(main_vol, size, args.repeats, work)
    results["matmul_flops"] = matmul_flops(args.repeats)
    print("measuring peak memory ...", flush=True)
    small, big = max(n // 4, 4), n
    results["rss"] = {
        "split_small": peak_rss("split", _volume(base, "rss-split", source, (1, 1, 1)).root,
                                str(small), str(small // 2), str(small // 2)),
        "split_big": peak_rss("split", (base / "rss-split"), str(big), str(big // 2), str(big // 2)),
        "split_images": [2 * (small + 2 * (small // 2)), 2 * (big + 2 * (big // 2))],
    }
    # Both past the first batches, where the pipeline's buffers are still filling (128 images: 1,279 MiB;
    # 256, 512 and 1,024 images: 1,420, 1,418 and 1,419 MiB at 180px).
    rss_vol = _volume(base, "rss-features", source, (2 * v, v, v))
    results["rss"]["features_small"] = peak_rss("features", rss_vol.root, str(size))
    shutil.rmtree(rss_vol.features, ignore_errors=True)
    _volume(base, "rss-features", source, (8 * v, 4 * v, 4 * v))
    results["rss"]["features_big"] = peak_rss("features", rss_vol.root, str(size))
    results["rss"]["features_images"] = [8 * v, 32 * v]
    results["table"] = table(results) + precision_rows(results["precision"]) + results["chain_table"]
    args.out.write_text(json.dumps(results, indent=2))
    show(results["table"], results)
    print(f"written to {args.out}")
    return results


def bench_inference(args, base: Path, source: Volume, size: int) -> dict:
    from shared.training.catalog import ModelName
    from shared.training.train import TrainConfig, train
    from tests.bench.chain_bench import cpu_model
    from tests.bench.infer_bench import bench_infer, folder_of, infer_rows

    vol = _volume(base, "infer", source, (50, 25, 25))
    train(config=TrainConfig(data_dir=vol.root, model=ModelName.scratch, epochs=1, image_size=size))
    print(f"benchmarking inference of {args.infer_images} JPEGs: infer, image_dataset_from_directory, a loop ...",
          flush=True)
    results = {"config": vars(args) | {"dir": str(base), "out": str(args.out)}}
    results["infer"] = bench_infer(vol, folder_of(source, base / "photos", args.infer_images), size, args.repeats,
                                   _wall)
    print("measuring infer's peak memory ...", flush=True)
    big = args.rss_images
    folders = {"small": folder_of(source, base / "rss-small", big // 10),
               "big": folder_of(source, base / "rss-big", big)}
    runs: dict[str, list[float]] = {"small": [], "big": []}
    for _ in range(args.repeats):  # interleaved: a single peak varies from run to run, at either size
        for name, folder in folders.items():
            shutil.rmtree(vol.reports / "infer", ignore_errors=True)  # every run scores
            runs[name].append(peak_rss("infer", vol.root, str(folder)))
    results["infer_rss"] = {"images": [big // 10, big], "runs": runs,
                            **{name: statistics.median(values) for name, values in runs.items()}}
    results["table"] = infer_rows(results["infer"], results["infer_rss"], cpu_model())
    args.out.write_text(json.dumps(results, indent=2))
    show(results["table"], results)
    return results


def table(r: dict) -> list[dict]:
    i, f, t, rss = r["input"], r["features"], r["training"], r["rss"]
    achieved = t["flops_per_image"] * t["ours"]
    rows = [
        ("input pipeline, epoch 1 (images/s)", i["seed_epoch1"], i["ours_epoch1"], None),
        ("input pipeline, epochs 2+ (images/s)", i["seed_later"], i["ours_later"], 5.0),
        ("VGG16 features, first run (images/s)", f["seed"], f["ours_first"], 1.2),
        ("VGG16 features, cached run (images/s)", f["seed"], f["ours_cached"], 50.0),
        ("scratch training (images/s)", t["seed"], t["ours"], 1.1),
    ]
    out = [{"measure": m, "seed": s, "ours": o, "ratio": o / s, "target": tgt,
            "met": None if tgt is None else o / s >= tgt} for m, s, o, tgt in rows]
    out.append({"measure": "scratch training GFLOP/s over measured matmul GFLOP/s", "seed": t["seed"] *
                t["flops_per_image"] / 1e9, "ours": achieved / 1e9, "ratio": achieved / r["matmul_flops"],
                "target": None, "met": None, "note": f"matmul: {r['matmul_flops'] / 1e9:.1f} GFLOP/s"})
    for stage in ("split", "features"):
        small, big = rss[f"{stage}_small"], rss[f"{stage}_big"]
        images = rss[f"{stage}_images"]
        out.append({"measure": f"peak RSS of {stage} (MiB) at {images[1]} images over at {images[0]}",
                    "seed": None, "ours": big, "ratio": big / small, "target": "no growth (<= 1.1x)",
                    "met": big / small <= 1.1, "note": f"{small:,.0f} MiB at {images[0]}"})
    return out


def precision_rows(p: dict) -> list[dict]:
    """Wall-time ratios of whole commands (median of interleaved rounds); targets on a CPU with native bf16."""
    auto = p["auto"]
    native = auto != "float32"
    rows = [(f"scratch training, whole command: auto ({auto}) over float32", p["train_auto_vs_float32"], None),
            (f"scratch training, whole command: auto ({auto}) over the seed's script", p["train_auto_vs_seed"],
             2.2 if native else None),
            ("scratch training, whole command: float32 over the seed's script", p["train_float32_vs_seed"], None),
            (f"VGG16 features of {p['feature_images']} images cold, whole command: auto ({auto}) over the "
             "seed's script",
             p["features_auto_vs_seed"], 2.5 if native else None)]
    return [{"measure": m, "seed": None, "ours": None, "ratio": r, "target": t, "met": None if t is None else r >= t,
             "note": f"median of {len(p['seconds']['train_seed'])} interleaved rounds"} for m, r, t in rows]


def show(rows: list[dict], results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    tbl = Table(title=f"catsdogs vs the seed's code, {results['config']['image_size']}px, "
                      f"medians of {results['config']['repeats']} after a warm-up")
    for col in ("measure", "seed", "ours", "ratio", "target", "met"):
        tbl.add_column(col, justify="left" if col == "measure" else "right")
    for row in rows:
        def num(x):
            return "-" if x is None else (f"{x:,.1f}" if isinstance(x, float) else str(x))
        target = row["target"] if isinstance(row["target"], str) else (
            "report" if row["target"] is None else f">= {row['target']}x")
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        tbl.add_row(row["measure"] + (f" [{row['note']}]" if row.get("note") else ""), num(row["seed"]),
                    num(row["ours"]), ratio, target, met)
    Console(width=140).print(tbl)


if __name__ == "__main__":
    main()
