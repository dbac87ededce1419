#!/usr/bin/env bash
# GPU check: on a generated split, every model for 2 epochs at 180x180 with --weights none, in float32
# and mixed precision; prints images/s per model and precision (epoch 2: epoch 1 traces and compiles).
# Needs a GPU (train --require-gpu); finishes in a few minutes on one. Usage: bash tests/bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
DIR=${GPU_CHECK_DIR:-$(mktemp -d)}
PER_CLASS=${GPU_CHECK_PER_CLASS:-500}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
MODELS=$($PY -m shared.catalog names)  # in the order fine-tune needs: its base comes first

$PY -m jobs doctor --data-dir "$DIR"
$PY -m jobs fetch --data-dir "$DIR" --source synthetic --per-class $((PER_CLASS + 200)) >/dev/null
$PY -m jobs split --data-dir "$DIR" --train "$PER_CLASS" --validation 100 --test 100 >/dev/null
rows=()
for precision in float32 mixed_float16 mixed_bfloat16; do
  for model in $MODELS; do
    start=$(date +%s)
    $PY -m jobs train --data-dir "$DIR" --model "$model" --epochs 2 --weights none --precision "$precision" \
      --require-gpu --force > "$DIR/$model-$precision.log" 2>&1 || { tail -5 "$DIR/$model-$precision.log"; exit 1; }
    rate=$($PY -c "import json, sys; h = json.load(open(sys.argv[1])); print(f'{2 * $PER_CLASS / h[\"epoch_seconds\"][-1]:.0f}')" \
      "$DIR/models/$model/history.json")
    rows+=("$(printf '%-30s %-15s %8s %6ss' "$model" "$precision" "$rate" "$(( $(date +%s) - start ))")")
    echo "${rows[-1]}"
  done
done
printf '\n%-30s %-15s %8s %7s\n' model precision "images/s" "wall"
printf '%s\n' "${rows[@]}"
