#!/usr/bin/env bash
# The prepared GPU check of issue 21, in one script (a few minutes on one GPU):
#   1. every registered model's training step and evaluation forward at the four protocol sizes
#      (ethanol 3 nodes, aspirin 13, walk 31, AdK 214 x 4 channels), interleaved rounds, --device cuda;
#   2. one short real run (5 epochs, one seed, ESTAG and EGNN-t) per dataset family on the GPU:
#      MD17 (the ethanol slice), AdK (adk-mini), CMU Motion (walk at 30 fps).
# Everything lands in $OUT (default ./gpu-check-out): bench-cuda.txt / .json, run-*.txt, results/.
# Commit bench-cuda.txt beside the CPU figures in leaderboards/speed/.
# Needs: a CUDA build of torch, the data in $ESTAGBENCH_DATA (the shared slices suffice).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export DGLBACKEND=${DGLBACKEND:-pytorch}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: torch sees no CUDA device; nothing to check" >&2
  exit 1
fi
"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)' \
  | tee "$OUT/device.txt"

status=0
"$PY" -m estagbench.cli bench --models all --sizes md17,walk,adk --device cuda --repeats 10 \
  --save "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench-cuda.txt" || status=1
if grep -q " failed: " "$OUT/bench-cuda.txt"; then
  echo "gpu_check: some models failed on CUDA (see bench-cuda.txt)" >&2
  status=1
fi

run() {  # family, then estagbench run arguments
  local family=$1
  shift
  "$PY" -m estagbench.cli run --models estag,egnn-t --seeds 1 --epochs 5 --device cuda --no-progress \
    --out "$OUT/results" "$@" 2>&1 | tee "$OUT/run-$family.txt" || status=1
}
run md17 --dataset md17 --molecules ethanol --split-margin 0 --split-fractions 0.3,0.15,0.15
run adk --dataset adk-mini
run motion --dataset motion-walk-30fps
"$PY" -m estagbench.cli results --out "$OUT/results" 2>&1 | tee "$OUT/results.txt" || status=1
exit $status
