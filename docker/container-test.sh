#!/usr/bin/env bash
# make container-test: the README's container section, run as written, and the image's promises.
# The README's commands are read from it (python3 -m tests.readme container) and run through `docker` and
# `make` shell functions that adapt them to this machine alone: podman instead of Docker, the local CPU
# base instead of Docker Hub's, Docker's --read-only (no /tmp added), no GPU (--gpus and --require-gpu
# dropped), no network in the containers, and smaller sizes (options appended, which win). Needs podman
# (or docker), runc, and the local base (../shared/tools/local-tf-base-image.sh; built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENGINE=${DOCKER:-$(command -v podman >/dev/null && echo podman || echo docker)}
BASE_IMAGE=${BASE_IMAGE:-localhost/tensorflow:2.21.0}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
say() { printf '\n== %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }

if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  # Podman's defaults ask for more than some sandboxes allow: runc and modest ulimits.
  conf=$(mktemp -d)/containers.conf
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' >"$conf"
  export CONTAINERS_CONF=$conf
fi

if ! $ENGINE image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  maker=../shared/tools/local-tf-base-image.sh
  [ -f "$maker" ] || { echo "error: no $BASE_IMAGE; build one (see $maker) or set BASE_IMAGE" >&2; exit 3; }
  say "making the local TensorFlow base $BASE_IMAGE"
  TAG=$BASE_IMAGE bash "$maker"
fi

work=$(mktemp -d)
chmod 755 "$work"
cleanup() {  # the named volumes the README's commands created (each ran in a subshell: names in a file)
  [ -f "$work/.volumes" ] && while read -r v; do $ENGINE volume rm -f "$v" >/dev/null 2>&1 || true; done <"$work/.volumes"
  rm -rf "$work"
}
trap cleanup EXIT

# The README's `docker`, on this machine.
docker() {
  local sub=$1; shift
  case $sub in
    build) $ENGINE build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg WITH_CUDA=0 "$@" ;;
    volume)
      if [ "$1" = create ]; then $ENGINE volume rm -f "$2" >/dev/null 2>&1 || true; echo "$2" >>"$work/.volumes"; fi
      $ENGINE volume "$@" ;;
    run)
      local args=() stage_at=-1 a skip=0
      for a in "$@"; do
        if [ $skip = 1 ]; then skip=0; continue; fi
        case $a in
          --gpus) skip=1 ;;                               # no GPU here
          --gpus=*|--require-gpu) ;;
          --read-only) args+=(--read-only --read-only-tmpfs=false) ;;   # Docker's: no /tmp added
          *) args+=("$a") ;;
        esac
      done
      # The stage is the word after the image (catsdogs); sizes are appended after its own options.
      for i in "${!args[@]}"; do [ "${args[$i]}" = catsdogs ] && stage_at=$((i + 1)) && break; done
      local smaller=()
      case ${args[$stage_at]:-} in
        fetch) smaller=(--per-class 60) ;;
        split) smaller=(--train 30 --validation 15 --test 15) ;;
        train) smaller=(--epochs 1 --prerequisite-epochs 1 --image-size 32 --weights none) ;;
        mnist) smaller=(--samples 600 --epochs 1) ;;
      esac
      $ENGINE run --network none "${args[@]}" "${smaller[@]}" ;;
    *) $ENGINE "$sub" "$@" ;;
  esac
}
sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else command sudo "$@"; fi; }
make() {  # the README's make docker-* targets: podman, the local base, a CPU, smaller sizes
  command make "$@" DOCKER="$ENGINE" BASE_IMAGE="$BASE_IMAGE" WITH_CUDA=0 GPUS= REQUIRE_GPU=0 \
    DATA_DIR="$work/make-data" PER_CLASS=60 TRAIN=30 VALIDATION=15 TEST=15 EPOCHS=1 BASE_EPOCHS=1 \
    IMAGE_SIZE=32 WEIGHTS=none
}

say "the README's container section, as written (with $ENGINE)"
mkdir -p "$work/photos"
python3 - "$work/photos" <<'PY'
import sys, zlib, struct
def png(path, rgb):  # a 48x48 solid image, standard library only
    raw = b"".join(b"\x00" + bytes(rgb) * 48 for _ in range(48))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 48, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/a.png", (200, 120, 40)); png(sys.argv[1] + "/b.png", (40, 40, 40))
PY
n=0
while IFS= read -r line; do
  n=$((n + 1))
  case $line in docker\ build*|make\ *) dir=$ROOT ;; *) dir=$work ;; esac  # builds need the repository
  printf -- '-- %s\n' "$line"
  (cd "$dir" && eval "$line") || fail "the README's command failed: $line"
done < <(python3 -m tests.readme container)
[ "$n" -ge 10 ] || fail "read only $n commands from the README's container section"
IMAGE=catsdogs

say "the image: non-root, no Kaggle settings, an empty /data"
uid=$($ENGINE run --rm --entrypoint id "$IMAGE" -u)
[ "$uid" = 10001 ] || fail "the image runs as uid $uid, not 10001"
if $ENGINE image inspect "$IMAGE" --format '{{json .Config.Env}}' | grep -q KAGGLE_; then
  fail "Kaggle settings are baked into the image"
fi
listing=$($ENGINE run --rm --entrypoint find "$IMAGE" /data)
[ "$listing" = /data ] || fail "the image's /data is not empty: $listing"

say "the named volume: reports written by the container's user"
owner=$($ENGINE run --rm -v catsdogs-data:/data --entrypoint stat "$IMAGE" -c %u /data/reports/summary.md)
[ "$owner" = 10001 ] || fail "reports/summary.md belongs to uid $owner"
$ENGINE run --rm -v catsdogs-data:/data --entrypoint cat "$IMAGE" /data/reports/summary.md
$ENGINE run --rm -v catsdogs-data:/data --entrypoint test "$IMAGE" -s /data/reports/mnist.md \
  || fail "no MNIST report on the named volume"
# export and infer ran read-only, as uid 10001: a SavedModel version and a submission file are on the volume
$ENGINE run --rm -v catsdogs-data:/data --entrypoint test "$IMAGE" \
  -s /data/models/fine-tune/seed-1337/export/fine-tune/1/saved_model.pb || fail "no export on the named volume"
owner=$($ENGINE run --rm -v catsdogs-data:/data --entrypoint stat "$IMAGE" -c %u \
  /data/reports/infer/fine-tune-seed-1337/test1/submission.csv) || fail "no submission.csv on the named volume"
[ "$owner" = 10001 ] || fail "submission.csv belongs to uid $owner"

say "Docker's --read-only without --tmpfs /tmp: exit 3, naming the flag"
set +e
out=$(docker run --rm --read-only -v catsdogs-data:/data catsdogs evaluate 2>&1); code=$?
set -e
echo "exit $code: $(printf '%s\n' "$out" | tail -n 1)"
[ "$code" = 3 ] && printf '%s' "$out" | grep -q -- "--tmpfs /tmp" || fail "expected exit 3 naming --tmpfs /tmp"

say "a bind mount created by root, and the image's user: doctor names the fix, exit 3"
mkdir "$work/root-owned" && chown 0:0 "$work/root-owned"
set +e
out=$(docker run --rm -v "$work/root-owned":/data catsdogs doctor 2>&1); code=$?
set -e
echo "exit $code: $(printf '%s\n' "$out" | tail -n 1)"
if [ "$(id -u)" = 0 ]; then
  [ "$code" = 3 ] && printf '%s' "$out" | grep -q "chown -R 10001:10001" || fail "expected exit 3 naming the chown"
fi

say "exit codes"  # the engine itself: the docker function's smaller sizes would replace --train 0
set +e
$ENGINE run --rm --network none -v catsdogs-data:/data "$IMAGE" split --train 0 >/dev/null 2>&1; usage=$?
$ENGINE run --rm --network none -v catsdogs-data:/data "$IMAGE" train --model fine-tune --data-dir /data/empty \
  >/dev/null 2>&1
permanent=$?
set -e
echo "usage error: $usage, permanent error: $permanent"
[ "$usage" = 2 ] && [ "$permanent" = 3 ] || fail "exit codes are not 2 and 3"

if [ "$ENGINE" = podman ]; then
  say "a plain podman build, in the OCI format (which ignores SHELL)"
  $ENGINE build --format oci --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg WITH_CUDA=0 \
    -f docker/Dockerfile -t localhost/catsdogs:oci .
  $ENGINE run --rm --network none localhost/catsdogs:oci --help >/dev/null
  $ENGINE rmi -f localhost/catsdogs:oci >/dev/null
fi
say "container-test passed in $SECONDS s"
