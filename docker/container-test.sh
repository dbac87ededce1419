#!/usr/bin/env bash
# Builds the image on a local CPU base and runs the demo pipeline in it, as its non-root user, with the
# data volume mounted from the host, a read-only root filesystem and no network (as in the k8s Job).
# Not part of `make test`: it needs podman (or docker) and a few GB of disk. Usage: make container-test
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${DOCKER:-$(command -v podman >/dev/null && echo podman || echo docker)}
BASE_IMAGE=${BASE_IMAGE:-localhost/tensorflow:2.21.0}
IMAGE=${IMAGE:-localhost/catsdogs:container-test}
say() { printf '\n== %s\n' "$*"; }

if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  # Podman's defaults ask for more than some sandboxes allow: runc and modest ulimits.
  conf=$(mktemp -d)/containers.conf
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' >"$conf"
  export CONTAINERS_CONF=$conf
fi

if ! $ENGINE image exists "$BASE_IMAGE" 2>/dev/null && ! $ENGINE image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  maker=../shared/tools/local-tf-base-image.sh
  [ -x "$maker" ] || { echo "error: no $BASE_IMAGE; build one (see $maker) or set BASE_IMAGE" >&2; exit 3; }
  say "making the local TensorFlow base $BASE_IMAGE"
  TAG=$BASE_IMAGE bash "$maker"
fi

say "building $IMAGE on $BASE_IMAGE with $ENGINE"
format=()
[ "$ENGINE" = podman ] && format=(--format docker)  # OCI images drop SHELL (and with it pipefail)
$ENGINE build "${format[@]}" --network host -f docker/Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg WITH_CUDA="${WITH_CUDA:-0}" -t "$IMAGE" .

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
chown 10001:10001 "$data" 2>/dev/null || chmod 0777 "$data"
run() { $ENGINE run --rm --network none --read-only --tmpfs /tmp -v "$data:/data" "$IMAGE" "$@"; }

say "the container's user"
uid=$($ENGINE run --rm --entrypoint id "$IMAGE" -u)
echo "uid $uid"
[ "$uid" != 0 ] || { echo "error: the image runs as root" >&2; exit 1; }
if $ENGINE image inspect "$IMAGE" --format '{{json .Config.Env}}' | grep -q KAGGLE_; then
  echo "error: Kaggle settings are baked into the image" >&2; exit 1
fi

say "the demo pipeline in the container"
run doctor
run fetch --source synthetic --per-class 60
run split --train 30 --validation 15 --test 15
run train --model scratch --epochs 2 --image-size 80
run train --model fine-tune --with-prerequisite --prerequisite-epochs 1 --epochs 1 --image-size 32 --weights none
run evaluate
run predict --model scratch /data/subsets/test/cat/cat.45.jpg /data/subsets/test/dog/dog.46.jpg
run fetch --source synthetic --per-class 60   # a finished stage again: a no-op

say "exit codes in the container"
set +e
run split --train 0 >/dev/null 2>&1; usage=$?
run train --model fine-tune --data-dir /data/empty >/dev/null 2>&1; permanent=$?
set -e
echo "usage error: $usage, permanent error: $permanent"
[ "$usage" = 2 ] && [ "$permanent" = 3 ] || { echo "error: exit codes are not 2 and 3" >&2; exit 1; }

say "on the host volume"
test -s "$data/reports/summary.md"
owner=$(stat -c %u "$data/reports/summary.md")
echo "reports/summary.md owned by uid $owner"
[ "$owner" = "$uid" ] || { echo "error: files are not the container user's" >&2; exit 1; }
cat "$data/reports/summary.md"
say "container-test passed"
