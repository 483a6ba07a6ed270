#!/usr/bin/env bash
# Runs proptest fuzz targets for at least 10 minutes each, single-threaded, as repeated runs of
# about two minutes (proptest draws a fresh random seed per run), and prints one line per target:
# total cases, runs, seconds and failed runs. A failed run's output stays in $LOGS.
#
# usage: scripts/fuzz-10min.sh BINARY:TARGET:CASES_PER_RUN ...
#   BINARY is the test binary's name (fuzz, files or peterrec_model), built first with
#   `cargo test --workspace --release --no-run`; e.g.
#   scripts/fuzz-10min.sh fuzz:fuzz_csv:5300000 files:fuzz_task_file_mutated:410000 \
#     peterrec_model:persist::tests::fuzz_backbone_config_with_valid_checksum:40000
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-/tmp/peterrec-fuzz}
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-600}
mkdir -p "$LOGS"
for spec in "$@"; do
  # BINARY:TARGET:CASES, where TARGET may itself hold `::` (persist::tests::fuzz_...).
  bin=${spec%%:*}; rest=${spec#*:}; chunk=${rest##*:}; name=${rest%:*}
  exe=$(ls -t target/release/deps/"$bin"-* | grep -v '\.d$' | head -1)
  start=$(date +%s); total=0; runs=0; fails=0
  while [ $(( $(date +%s) - start )) -lt "$SECONDS_PER_TARGET" ]; do
    log="$LOGS/$name.$runs.log"
    if PROPTEST_CASES=$chunk "$exe" --exact "$name" --test-threads=1 >"$log" 2>&1 \
       && grep -q "test result: ok. 1 passed" "$log"; then
      rm -f "$log"
    else
      fails=$((fails + 1))
    fi
    total=$((total + chunk)); runs=$((runs + 1))
  done
  echo "$name cases=$total runs=$runs seconds=$(( $(date +%s) - start )) failures=$fails"
done
