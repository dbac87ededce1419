"""The infer stage: a trained run scores a big unlabeled set (Kaggle's test1 by default), sharded.

Files are listed in one stable order (test1 by id, anything else as `predict` lists it); shard I of N
takes the files at positions I, I+N, I+2N...: every file is in exactly one shard, whatever N. Each shard
writes its part under a temporary name and renames it into place, with a record of what it scored
(the model file's hash, the list's hash, N); a part whose record matches is not redone, so a shard that
died is redone alone. The shard that finds every part in place merges them, under a lock, into
predictions.csv (and, for test1, submission.csv in the competition's format): the same bytes as one
process scoring everything, since one process is the one-shard case of the same code.

Images stream through a tf.data pipeline (read, check, decode and resize as training does, batch,
prefetch): memory does not grow with the number of images.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.core.console import say
from shared.core.errors import PermanentError, RetryableError, UsageError, one_line
from shared.core.seeds import DEFAULT_SEED
from shared.reports.predict import expand, load_run, read_regular
from shared.training.catalog import ModelName
from shared.volume.fsutil import read_cached, sha256_file, write_json, write_text
from shared.volume.layout import MODEL_FILE, Volume, run_key

NEUTRAL = 0.5  # --skip-unreadable's answer for a file that is no image: p_dog 0.5, label 0 (p_dog > 0.5 is dog)
TEST1 = "test1"


@dataclass(frozen=True)
class InferConfig:
    data_dir: Path
    model: ModelName
    seed: int = DEFAULT_SEED
    inputs: tuple[Path, ...] = ()  # empty: the volume's test1
    batch_size: int = 32
    shard: int = 0
    shards: int = 1
    skip_unreadable: bool = False
    precision: str = "float32"  # what the model computes in here: float32, a mixed policy, or auto (the hardware's)


@dataclass(frozen=True)
class InferResult:
    folder: Path
    merged: bool  # False: other shards are still to come
    scored: int
    unreadable: list[str]


def check_shards(shard: int, shards: int) -> None:
    if shards < 1 or not 0 <= shard < shards:
        raise UsageError(f"--shard {shard} --shards {shards}: expected 0 <= shard < shards")


def listing(vol: Volume, inputs: tuple[Path, ...]) -> tuple[str, list[Path]]:
    """(the input's name in the output's path, its files in their stable order)."""
    if not inputs:
        if not vol.test1.is_dir():
            raise PermanentError(f"no unlabeled test set at {vol.test1}: its source had none (Kaggle's archive and the "
                                 "generated stand-in have one: fetch again with --force), or name the images")
        files = [p for p in vol.test1.iterdir() if p.stem.isascii() and p.stem.isdigit()]
        return TEST1, sorted(files, key=lambda p: int(p.stem))
    files = expand(inputs)
    if not files:
        raise PermanentError("no files to score in " + ", ".join(str(p) for p in inputs))
    digest = hashlib.sha256("\n".join(str(p) for p in files).encode()).hexdigest()[:12]
    return f"files-{digest}", files


def _name(path: Path, what: str) -> str:
    return path.name if what == TEST1 else str(path)


def _scores(model, files: list[Path], positions: list[int], *, image_size: int, batch_size: int):
    """(position, p_dog) of every readable file, and {position: why} of the others; streamed, in order.

    No `ignore_errors` in the pipeline: it stops tf.data fusing the decoding map into the batching, and the
    unfused pipeline's peak memory went up by 130-170 MiB on some runs and not others (1,250 images, 180px:
    893-1,119 MiB against a steady 946-961 fused). Bytes TensorFlow cannot decode (a cut JPEG whose header
    reads fine) are rare, so they take the slow road instead: the pipeline stops, the first such file among
    those not yet scored is found by decoding them one by one, and a new pipeline resumes after it."""
    import tensorflow as tf

    from shared.data.pipeline import resize_decoded

    unreadable: dict[int, str] = {}
    scored: dict[int, float] = {}
    remaining = positions
    while remaining:
        try:
            for ks, pixels in _batches(files, remaining, unreadable, image_size=image_size, batch_size=batch_size):
                p = np.asarray(model.predict_on_batch(pixels), dtype=np.float32).ravel()
                scored.update(zip(ks.numpy().tolist(), p.tolist(), strict=True))
            return scored, unreadable
        except tf.errors.OpError as error:
            remaining = [k for k in remaining if k not in scored and k not in unreadable]
            for k in remaining:  # checked first, as in the pipeline: a FIFO further on is refused, not waited on
                contents, why = _checked(files[k])
                if why is not None:
                    unreadable[k] = why
                    continue
                try:
                    resize_decoded(contents, image_size)
                except tf.errors.OpError:
                    unreadable[k] = "does not decode as an image"
                    break
            else:  # every one decodes alone: the failure was not the files' (a read error, say)
                raise RetryableError(f"scoring stopped, though every file left decodes alone: "
                                     f"{one_line(error.message)}") from None
            remaining = [k for k in remaining if k not in unreadable]
    return scored, unreadable


def _batches(files: list[Path], positions: list[int], unreadable: dict[int, str], *, image_size: int,
             batch_size: int):
    """The batches (positions, pixels) of the files at `positions` that pass the checks; the others go into
    `unreadable` with the reason."""
    import tensorflow as tf

    from shared.data.pipeline import PREFETCH_BATCHES, decode_threads, pipeline_options, resize_decoded

    def checked():
        """Each file checked, then only its position and path go on: TensorFlow reads it again, in its own
        threads (the page cache has it), and no encoded image is held by Python."""
        for k in positions:
            contents, error = _checked(files[k])
            del contents
            if error is None:
                yield k, str(files[k])
            else:
                unreadable[k] = error

    data = tf.data.Dataset.from_generator(checked, output_signature=(tf.TensorSpec((), tf.int64),
                                                                     tf.TensorSpec((), tf.string)))
    data = data.map(lambda k, path: (k, resize_decoded(tf.io.read_file(path), image_size)),
                    num_parallel_calls=decode_threads(), deterministic=True)
    return data.batch(batch_size).prefetch(PREFETCH_BATCHES).with_options(pipeline_options())


def _checked(path: Path) -> tuple[bytes | None, str | None]:
    """(its bytes, None) or (None, why not), as `predict` checks a file: a regular file, not through a link,
    of a photo's size and pixels (read from the header)."""
    from shared.data.pipeline import image_problem

    contents, error = read_regular(path)
    if error is None:
        error = image_problem(contents)
    return (contents, None) if error is None else (None, error)


def _row(name: str, p_dog: float) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([name, f"{p_dog:.6f}", int(p_dog > 0.5)])
    return out.getvalue()


def infer(*, config: InferConfig) -> InferResult:
    check_shards(config.shard, config.shards)
    vol = Volume(config.data_dir)
    name = ModelName(config.model).value
    key = run_key(name, config.seed)
    what, files = listing(vol, config.inputs)
    folder = vol.reports / "infer" / key / what
    parts = folder / "parts" / str(config.shards)
    run, model = load_run(vol, name, config.seed, doing="inferring")
    from shared.serving.export import in_policy
    from shared.training.precision import resolve_precision

    precision = resolve_precision(config.precision)
    model = in_policy(model, precision)  # the run's weights; float32 whatever it trained in, unless asked
    identity = {"model_sha256": sha256_file(vol.model_dir(name, config.seed) / MODEL_FILE),
                "files_sha256": hashlib.sha256("\n".join(str(p) for p in files).encode()).hexdigest(),
                "shards": config.shards, "skip_unreadable": config.skip_unreadable, "precision": precision}
    record = parts / f"part-{config.shard}.json"
    if (read_cached(record) or {}).get("identity") != identity:
        positions = list(range(config.shard, len(files), config.shards))
        scored, unreadable = _scores(model, files, positions, image_size=run.image_size,
                                     batch_size=config.batch_size)
        rows = []
        for k in positions:
            if k in scored:
                rows.append(f"{k},{_row(_name(files[k], what), scored[k])}")
            elif config.skip_unreadable:
                rows.append(f"{k},{_row(_name(files[k], what), NEUTRAL)}")
        write_text(parts / f"part-{config.shard}.csv", "".join(rows))
        write_json(record, {"identity": identity, "scored": len(scored),
                            "unreadable": {_name(files[k], what): why for k, why in sorted(unreadable.items())}})
        say(f"infer: shard {config.shard} of {config.shards}: {len(scored)} of {len(positions)} images scored")
    with vol.lock(f"infer-{key}-{what}", what=f"merging {key}'s {what} predictions", wait_s=None):
        return _merge(vol=vol, run=run, folder=folder, parts=parts, identity=identity, what=what, total=len(files),
                      config=config)


def _merge(*, vol: Volume, run, folder: Path, parts: Path, identity: dict, what: str, total: int,
           config: InferConfig) -> InferResult:
    records = [read_cached(parts / f"part-{i}.json") or {} for i in range(config.shards)]
    unreadable = sorted({name for r in records for name in (r.get("unreadable") or {})})
    if any(r.get("identity") != identity for r in records):
        waiting = [i for i, r in enumerate(records) if r.get("identity") != identity]
        say(f"infer: waiting for shard(s) {', '.join(map(str, waiting))} of {config.shards} before merging")
        return InferResult(folder, False, 0, unreadable)
    rows = []
    for i in range(config.shards):
        for line in (parts / f"part-{i}.csv").read_text().splitlines(keepends=True):
            position, _, row = line.partition(",")
            rows.append((int(position), row))
    rows.sort()
    write_text(folder / "predictions.csv", "file,p_dog,label\n" + "".join(row for _, row in rows))
    write_text(folder / "unreadable.txt", "".join(f"{name}\n" for name in unreadable))
    config_json = read_cached(vol.model_dir(run.model, run.seed) / "config.json") or {}
    write_json(folder / "meta.json", {
        "model": run.model, "seed": run.seed, "split": run.split, "weights": config_json.get("weights"),
        "precision": identity["precision"], "trained_precision": run.precision,
        "data_source": config_json.get("data_source"), "input": what,
        "images": total, "scored": len(rows) - (len(unreadable) if config.skip_unreadable else 0),
        "unreadable": len(unreadable), "neutral_answer": NEUTRAL if config.skip_unreadable else None,
        "shards": config.shards, "model_sha256": identity["model_sha256"]})
    if what == TEST1 and (not unreadable or config.skip_unreadable):
        _submission(vol, folder, rows)
    say(f"infer: {len(rows)} predictions in {folder / 'predictions.csv'}"
        + (f", submission in {folder / 'submission.csv'}" if (folder / "submission.csv").exists() else ""))
    return InferResult(folder, True, len(rows), unreadable)


def _submission(vol: Volume, folder: Path, rows: list[tuple[int, str]]) -> None:
    """submission.csv in the competition's format: id,label (1 = dog), sampleSubmission.csv's ids and order."""
    if not vol.sample_submission.is_file():
        raise PermanentError(f"no {vol.sample_submission}: the competition's ids and order are unknown")
    labels = {}
    for _, row in rows:
        name, _, label = next(csv.reader([row]))
        labels[Path(name).stem] = label
    with open(vol.sample_submission, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        ids = [r[0].strip() for r in reader if r]
    if header is None or [h.strip() for h in header[:2]] != ["id", "label"]:
        raise PermanentError(f"{vol.sample_submission} does not start with the header id,label")
    seen, twice = set(), []
    for i in ids:
        if i in seen:
            twice.append(i)
        seen.add(i)
    if twice:
        raise PermanentError(f"{vol.sample_submission} lists ids more than once: {', '.join(twice[:10])}")
    missing = [i for i in ids if i not in labels]
    if missing:
        raise PermanentError(f"test1 has no image for ids {', '.join(missing[:10])} of {vol.sample_submission}"
                             + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""))
    write_text(folder / "submission.csv", "id,label\n" + "".join(f"{i},{labels[i]}\n" for i in ids))

