#!/usr/bin/env bash
# GPU check, for a GPU host: doctor, then every model for 2 epochs at 180x180 with --weights none under
# --precision auto, on one GPU (--strategy single) and on all of them (--strategy mirrored), printing
# images/s per model and replica count (epoch 2: epoch 1 traces and compiles). Needs a GPU; a few minutes.
# Usage: bash tests/bench/gpu_check.sh   (make gpu-check)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
DIR=${GPU_CHECK_DIR:-$(mktemp -d)}
PER_CLASS=${GPU_CHECK_PER_CLASS:-500}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
MODELS=$($PY -m shared.training.catalog names)  # in the order fine-tune needs: its base comes first

$PY -m jobs doctor --data-dir "$DIR"   # exits 3, with the reason, if TensorFlow cannot use the GPU
$PY -m jobs fetch --data-dir "$DIR" --source synthetic --per-class $((PER_CLASS + 200)) >/dev/null
$PY -m jobs split --data-dir "$DIR" --train "$PER_CLASS" --validation 100 --test 100 >/dev/null
rows=()
for strategy in single mirrored; do
  for model in $MODELS; do
    start=$(date +%s)
    log="$DIR/$model-$strategy.log"
    $PY -m jobs train --data-dir "$DIR" --model "$model" --epochs 2 --weights none --precision auto \
      --strategy "$strategy" --require-gpu --force > "$log" 2>&1 || { tail -5 "$log"; exit 1; }
    read -r rate replicas precision < <($PY -c "import json, sys; d = sys.argv[1]; \
h = json.load(open(d + '/history.json')); c = json.load(open(d + '/config.json')); \
print(f'{2 * $PER_CLASS / h[\"epoch_seconds\"][-1]:.0f}', h['replicas'][-1], c['run']['precision'])" \
      "$DIR/models/$model")
    rows+=("$(printf '%-30s %-9s %8s %8s %-15s %6ss' "$model" "$strategy" "$replicas" "$rate" "$precision" \
      "$(( $(date +%s) - start ))")")
    echo "${rows[-1]}"
  done
done
printf '\n%-30s %-9s %8s %8s %-15s %7s\n' model strategy replicas "images/s" precision wall
printf '%s\n' "${rows[@]}"
