"""Run one stage in this process and print its peak resident memory, for the benchmark's RSS rows."""

import json
import resource
import sys
from pathlib import Path


def main() -> None:
    what, root = sys.argv[1], Path(sys.argv[2])
    if what == "split":
        from shared.data.split import SplitConfig, split

        train, validation, test = (int(v) for v in sys.argv[3:6])
        split(config=SplitConfig(data_dir=root, train=train, validation=validation, test=test, force=True))
    elif what == "features":
        from shared.data.split import load_manifest
        from shared.training.features import ensure_features
        from shared.volume.layout import Volume

        vol = Volume(root)
        ensure_features(volume=vol, split_manifest=load_manifest(vol), weights="none", seed=0,
                        image_size=int(sys.argv[3]), batch_size=32)
    elif what == "infer":  # ROOT FOLDER: score FOLDER with ROOT's scratch run
        from shared.serving.infer import InferConfig, infer
        from shared.training.catalog import ModelName

        infer(config=InferConfig(data_dir=root, model=ModelName.scratch, inputs=(Path(sys.argv[3]),)))
    else:
        raise SystemExit(f"unknown stage {what}")
    print(json.dumps({"peak_rss_mib": peak_mib()}))


def peak_mib() -> float:
    """This process's own high-water mark. ru_maxrss is inherited from a forking parent; VmHWM is not."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
