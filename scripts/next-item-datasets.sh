#!/usr/bin/env bash
# Next-item results on the Amazon Sports, Toys and Yelp sequences (5-core, one user per line),
# with the same protocol as ML-1M: leave-last-out, full ranking, history excluded, ties against
# the target; popularity and first-order Markov on the same split, and the sampled protocols
# beside them. One `nextitem` run per data set; its final JSON line goes to stdout, its
# per-epoch metrics to docs/logs/next-item-<name>.jsonl.
#
# usage: PETERREC_DATA=/path/to/data scripts/next-item-datasets.sh [extra nextitem flags] > out.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${PETERREC_DATA:?set PETERREC_DATA to the folder holding amazon/}
cargo build --release --example nextitem >&2
for name in Toys_and_Games Sports_and_Outdoors Yelp; do
  echo "# $name" >&2
  target/release/examples/nextitem --format sequences --path "$DATA/amazon/$name.txt" --quiet \
    --log "docs/logs/next-item-$name.jsonl" "$@" | tee /dev/stderr | grep '^{'
done
