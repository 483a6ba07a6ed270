#!/usr/bin/env bash
# Side-by-side CPU step times: the PyTorch port (nextitnet_torch.py) and ours (the `bench_step`
# binary of peterrec-experiments) on the NdArray and Flex backends, alternately in one session,
# 2 threads each, one JSON line per run.
#
# usage: scripts/cpu-side-by-side.sh [a|b|ab] > results.jsonl
#   PY=/tmp/torch-venv/bin/python (the venv is described in the README beside the port)
#   TORCH_PORT=path/to/nextitnet_torch.py (default: bench/ beside the $PETERREC_DATA folder)
#   Builds `bench_step` with `--features flex` first. ROUNDS (default 2) repeats every line.
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${1:-ab}
PY=${PY:-/tmp/torch-venv/bin/python}
TORCH="$PY ${TORCH_PORT:-${PETERREC_DATA:?set PETERREC_DATA or TORCH_PORT}/../bench/nextitnet_torch.py}"
ROUNDS=${ROUNDS:-2}
cargo build --release -p peterrec-experiments --features flex --bin bench_step >&2
BS=target/release/bench_step
export OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2

run() { echo "# $*" >&2; "$@" 2>/dev/null | grep '^{' || echo '{"failed":"'"$*"'"}'; }

for s in a b; do
  case "$SHAPES" in *$s*) ;; *) continue ;; esac
  if [ $s = a ]; then
    T="-V 10000 -C 64 -L 20 -B 32 --dilations 1,2,4,8x2 --warmup 5 --steps 30"; O="--warmup 5 --steps 30"
  else
    T="-V 50000 -C 256 -L 50 -B 128 --dilations 1,4x4 --warmup 1 --steps 4"; O="--warmup 1 --steps 4"
  fi
  for _ in $(seq "$ROUNDS"); do
    run $TORCH pretrain-step $T --tag torch
    for d in cpu flex; do run $BS --shape $s --mode pretrain --device $d $O; done
    [ $s = b ] && for d in cpu flex; do run $BS --shape $s --mode pretrain --sampled 1024 --device $d $O; done
    run $TORCH finetune-step $T --adapter-act gelu --adapter-placement serial --ft-train-ln2 --tag torch
    for d in cpu flex; do
      for st in peterrec-serial fineall; do run $BS --shape $s --mode finetune --strategy $st --device $d $O; done
    done
    run $TORCH infer $T --tag torch
    for d in cpu flex; do run $BS --shape $s --mode infer --device $d $O; done
  done
done
