#!/usr/bin/env bash
# GPU benchmark run: builds with CUDA and prints one JSON line per measurement.
#
# usage: scripts/gpu-bench.sh [DATA_DIR]
#   DATA_DIR (or $PETERREC_DATA) holds ml-1m/; without it the ML-1M pretraining is skipped with a
#   message. Needs only the working tree and the cargo registry cache (no network on the GPU
#   machine); sized to finish in under 5 minutes on one H200 after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${PETERREC_DATA:-}}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
time cargo build --release -p peterrec-experiments --features cuda --bin bench_step
time cargo build --release --features cuda --example nextitem
BS=target/release/bench_step
for shape in a b; do
  steps=20; [ "$shape" = b ] && steps=10
  $BS --device "$DEVICE" --shape $shape --mode pretrain --warmup 3 --steps $steps
  $BS --device "$DEVICE" --shape $shape --mode pretrain --sampled 1024 --warmup 3 --steps $steps
  for s in peterrec-serial peterrec-parallel fineall finecls finelast-1; do
    $BS --device "$DEVICE" --shape $shape --mode finetune --strategy $s --warmup 3 --steps $steps
  done
  $BS --device "$DEVICE" --shape $shape --mode infer --warmup 3 --steps $steps
  $BS --device "$DEVICE" --shape $shape --mode infer --users 1 --warmup 3 --steps $steps
done
if [ -n "$DATA" ] && [ -d "$DATA/ml-1m" ]; then
  target/release/examples/nextitem --format ml-1m --path "$DATA/ml-1m" --device "$DEVICE" \
    --epochs 2 --quiet --log "$OUT/gpu-ml1m.jsonl" | tail -1
else
  echo "ML-1M pretraining skipped: no DATA_DIR/ml-1m (pass it or set PETERREC_DATA)" >&2
fi
