#!/usr/bin/env bash
# petal's speed at every SIMD level this processor runs, alternating the levels ROUNDS times so
# the machine's drift hits them alike; compare the best figure of each (and quote ratios).
#   cargo build --release && scripts/bench_simd_levels.sh [ROUNDS]
set -euo pipefail
petal="${PETAL:-target/release/petal}"
rounds="${1:-3}"
lscpu | grep -m1 "Model name" || true
levels=()
for level in avx512 avx2 scalar; do
  if PETAL_SIMD=$level "$petal" summary --preset tutorial >/dev/null 2>&1; then levels+=("$level"); fi
done
for _ in $(seq "$rounds"); do
  for level in "${levels[@]}"; do
    PETAL_SIMD=$level "$petal" bench train --rounds 2 | tail -1
    PETAL_SIMD=$level "$petal" bench infer | tail -1
  done
done
