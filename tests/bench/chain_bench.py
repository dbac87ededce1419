"""The VGG16 chain as whole commands (`make bench BENCH_ARGS="--only chain"`): feature-extraction-augmented
then fine-tune, with the frozen-prefix validation cache on and off, against the seed's two fits as written.
Interleaved rounds (seed, on, off, auto ...); each ratio is the median of the rounds' ratios."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from shared.volume.fsutil import read_json, remove
from shared.volume.layout import Volume

CHAIN = ("feature-extraction-augmented", "fine-tune")


def commands(vol: Volume, size: int, epochs: int) -> dict[str, list[str]]:
    py = sys.executable
    ours = [py, "-m", "jobs", "train", "--model", "fine-tune", "--with-prerequisite", "--prerequisite-epochs",
            str(epochs), "--epochs", str(epochs), "--image-size", str(size), "--weights", "none", "--data-dir",
            str(vol.root)]
    return {
        "seed": [py, "-m", "tests.bench.seed_run", "chain", str(vol.subsets), str(size), str(epochs), str(epochs)],
        "cache": [*ours, "--precision", "float32"],
        "no_cache": [*ours, "--precision", "float32", "--no-frozen-cache"],
        "auto_cache": [*ours, "--precision", "auto"],
    }


def validation_seconds(vol: Volume) -> dict[str, list[float]]:
    return {m: read_json(vol.model_dir(m) / "history.json")["validation_seconds"] for m in CHAIN}


def bench_chain(vol: Volume, size: int, repeats: int, epochs: int, wall) -> dict:
    times: dict[str, list[float]] = {}
    val: dict[str, list] = {}
    for _ in range(repeats):
        for name, cmd in commands(vol, size, epochs).items():
            remove(vol.models)  # both models trained in every round, as the seed's script does
            times.setdefault(name, []).append(wall(cmd))
            if name != "seed":
                val.setdefault(name, []).append(validation_seconds(vol))

    def ratio(slow: str, fast: str) -> float:
        return statistics.median(s / f for s, f in zip(times[slow], times[fast], strict=True))

    def spread(slow: str, fast: str) -> list[float]:
        r = [s / f for s, f in zip(times[slow], times[fast], strict=True)]
        return [min(r), max(r)]

    return {"epochs": epochs, "seconds": times, "validation_seconds": val,
            "cache_vs_no_cache": ratio("no_cache", "cache"), "cache_vs_no_cache_range": spread("no_cache", "cache"),
            "cache_vs_seed": ratio("seed", "cache"), "cache_vs_seed_range": spread("seed", "cache"),
            "auto_vs_seed": ratio("seed", "auto_cache"), "auto_vs_seed_range": spread("seed", "auto_cache")}


def chain_rows(c: dict, auto: str, cpu: str) -> list[dict]:
    n = len(c["seconds"]["seed"])
    rows = [("VGG16 chain, whole command: frozen-prefix cache on over off (float32)", c["cache_vs_no_cache"],
             c["cache_vs_no_cache_range"], 1.15),
            ("VGG16 chain, whole command: cache on (float32) over the seed's script", c["cache_vs_seed"],
             c["cache_vs_seed_range"], 1.35),
            (f"VGG16 chain, whole command: cache on, auto ({auto}) over the seed's script", c["auto_vs_seed"],
             c["auto_vs_seed_range"], None)]
    return [{"measure": m, "seed": None, "ours": None, "ratio": r, "target": t, "met": None if t is None else r >= t,
             "note": f"median of {n} interleaved rounds, range {lo:.2f}-{hi:.2f}x, {c['epochs']}+{c['epochs']} epochs, "
                     f"{cpu}"} for m, r, (lo, hi), t in rows]


def cpu_model() -> str:
    """The CPU's name, and whether it has AMX (bfloat16 VGG16 4-5x float32 there, 2x with AVX512_BF16 alone)."""
    from shared.training.precision import cpu_flags

    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), "unknown CPU")
    return f"{name}, {'with' if 'amx_bf16' in cpu_flags() else 'without'} AMX"
