"""Does --precision auto cost accuracy? scratch and feature-extraction on the generated data, several seeds,
float32 against auto (what this machine runs natively), mean test accuracy side by side.

    python -m tests.bench.parity [--seeds 3] [--out parity.json]      (make parity)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.orchestration.reporting import EvaluateConfig, evaluate
from shared.training.catalog import ModelName
from shared.training.precision import resolve_precision
from shared.training.train import TrainConfig, train

RUNS = {ModelName.scratch: {"epochs": 10, "image_size": 96},
        ModelName.feature_extraction: {"epochs": 10, "image_size": 96, "weights": "none"}}
TOLERANCE = 0.015  # mean test accuracy, auto against float32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("parity.json"))
    args = parser.parse_args(argv)
    auto = resolve_precision("auto")
    rows, started = [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="catsdogs-parity-") as tmp:
        root = Path(tmp)
        fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=400))
        split(config=SplitConfig(data_dir=root, train=250, validation=75, test=75))
        for model, options in RUNS.items():
            for precision in ("float32", "auto"):
                for seed in range(args.seeds):
                    train(config=TrainConfig(data_dir=root, model=model, seed=seed, precision=precision, force=True,
                                             **options))
                    (row,) = evaluate(config=EvaluateConfig(data_dir=root, model=model.value, force=True))
                    rows.append({"model": model.value, "precision": precision, "resolved": row["precision"],
                                 "seed": seed, "accuracy": row["metrics"]["accuracy"]})
                    print(json.dumps(rows[-1]), flush=True)
    table, ok = [], True
    for model in RUNS:
        means = {p: statistics.mean(r["accuracy"] for r in rows if r["model"] == model.value and r["precision"] == p)
                 for p in ("float32", "auto")}
        within = abs(means["auto"] - means["float32"]) <= TOLERANCE
        ok &= within
        table.append({"model": model.value, "float32": means["float32"], "auto": means["auto"],
                      "difference": means["auto"] - means["float32"], "within": within})
    print(f"\n--precision auto is {auto} here; {args.seeds} seeds; {time.monotonic() - started:.0f} s\n")
    print("| model | float32 | auto | difference | within 1.5 points |\n|---|---|---|---|---|")
    for t in table:
        print(f"| {t['model']} | {100 * t['float32']:.1f}% | {100 * t['auto']:.1f}% | "
              f"{100 * t['difference']:+.1f} | {'yes' if t['within'] else 'no'} |")
    args.out.write_text(json.dumps({"auto": auto, "runs": rows, "table": table, "passed": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
