"""make bench's inference rows (issue 27): `catsdogs infer` against what users write, whole commands,
interleaved rounds (A B C A B C ...), images/s; and its peak memory at 10x the images."""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

from shared.volume.layout import Volume


def folder_of(source: Volume, target: Path, count: int) -> Path:
    """`count` JPEGs of the fetched stand-in in one flat folder (hard links): a photo folder to score."""
    if target.is_dir() and len(list(target.iterdir())) == count:
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    images = sorted(source.raw_images.iterdir())[:count]
    if len(images) < count:
        raise SystemExit(f"the bench's source has {len(images)} images, {count} wanted: raise --per-class")
    for p in images:
        (target / p.name).hardlink_to(p)
    return target


def bench_infer(vol: Volume, photos: Path, size: int, repeats: int, wall) -> dict:
    """`vol` has a trained scratch run at `size`; `photos` the images to score."""
    from shared.volume.layout import MODEL_FILE

    py, model = sys.executable, str(vol.model_dir("scratch") / MODEL_FILE)
    out = vol.root / "bench-out.csv"
    ours = [py, "-m", "jobs", "infer", "--model", "scratch", str(photos), "--data-dir", str(vol.root)]
    commands = {
        "ours": ours,
        "ours_auto": [*ours, "--precision", "auto"],
        "directory": [py, "-m", "tests.bench.infer_run", "directory", str(photos), model, str(size), str(out)],
        "loop": [py, "-m", "tests.bench.infer_run", "loop", str(photos), model, str(size), str(out)],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            shutil.rmtree(vol.reports / "infer", ignore_errors=True)  # every round scores, none reuses a part
            times[name].append(wall(cmd))
    n = len(list(photos.iterdir()))
    from shared.serving.infer import InferConfig, infer
    from shared.training.catalog import ModelName
    from shared.training.precision import resolve_precision

    p_dog = {}
    for precision in ("float32", "auto"):  # on the split's test subset: the price of the speed
        shutil.rmtree(vol.reports / "infer", ignore_errors=True)
        result = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch, precision=precision,
                                          inputs=(vol.subset("test"),)))
        rows = (result.folder / "predictions.csv").read_text().splitlines()[1:]
        p_dog[precision] = [float(line.rsplit(",", 2)[1]) for line in rows]
    return {"images": n, "seconds": times, "rate": {k: n / statistics.median(v) for k, v in times.items()},
            "auto": resolve_precision("auto"),
            "auto_max_p_dog_difference": max(abs(a - b) for a, b in zip(p_dog["float32"], p_dog["auto"], strict=True)),
            "auto_test_images": len(p_dog["auto"]),
            "auto_over_float32": statistics.median(f / a for f, a in zip(times["ours"], times["ours_auto"],
                                                                          strict=True)),
            "ours_over_directory": statistics.median(d / o for o, d in zip(times["ours"], times["directory"],
                                                                            strict=True)),
            "ours_over_loop": statistics.median(lp / o for o, lp in zip(times["ours"], times["loop"], strict=True))}


def infer_rows(r: dict, rss: dict, cpu: str) -> list[dict]:
    rate = r["rate"]
    rows = [{"measure": f"infer of {r['images']} JPEGs, whole command, over image_dataset_from_directory + "
                        f"predict ({cpu})", "seed": rate["directory"], "ours": rate["ours"],
             "ratio": r["ours_over_directory"], "target": 1.0, "met": r["ours_over_directory"] >= 1.0,
             "note": "images/s"},
            {"measure": f"infer of {r['images']} JPEGs, whole command, over a per-image predict loop ({cpu})",
             "seed": rate["loop"], "ours": rate["ours"], "ratio": r["ours_over_loop"], "target": 10.0,
             "met": r["ours_over_loop"] >= 10.0, "note": "images/s"}]
    rows.append({"measure": f"infer, whole command: --precision auto ({r['auto']}) over float32 ({cpu})",
                 "seed": rate["ours"], "ours": rate["ours_auto"], "ratio": r["auto_over_float32"], "target": None,
                 "met": None, "note": f"largest p_dog difference on the {r['auto_test_images']} test images: "
                                      f"{r['auto_max_p_dog_difference']:.2g}"})
    small, big = rss["small"], rss["big"]
    spread = {k: f"{min(v):,.0f}-{max(v):,.0f}" for k, v in rss["runs"].items()}
    rows.append({"measure": f"peak RSS of infer (MiB), median of {len(rss['runs']['big'])} interleaved runs, at "
                            f"{rss['images'][1]} images over at {rss['images'][0]}",
                 "seed": None, "ours": big, "ratio": big / small, "target": "no growth (<= 1.1x)",
                 "met": big / small <= 1.1, "note": f"{small:,.0f} MiB at {rss['images'][0]}; runs: "
                                                    f"{spread['small']} and {spread['big']} MiB"})
    return rows
