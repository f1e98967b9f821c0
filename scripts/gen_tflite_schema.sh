#!/usr/bin/env bash
# Regenerates src/tflite/schema/generated.rs from TensorFlow Lite's schema with planus
# (`cargo install planus-cli --version 1.3.0`, the version of the `planus` crate in Cargo.toml).
#
# planus does not parse the `(deprecated)` attribute on enum values, union members and tables
# (it does on fields); it is dropped from those three places first. That changes nothing on the
# wire: the values keep their numbers and the union member its slot.
#
#     scripts/gen_tflite_schema.sh ../shared/specs/tflite_schema.fbs
set -euo pipefail
cd "$(dirname "$0")/.."
schema="${1:-../shared/specs/tflite_schema.fbs}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed -E \
  -e 's/^(  [A-Z_0-9]+ = [0-9]+) \(deprecated\),/\1,/' \
  -e 's/^(  [A-Za-z0-9]+Options) \(deprecated\),/\1,/' \
  -e 's/^(table [A-Za-z0-9]+) \(deprecated\) \{/\1 {/' \
  "$schema" >"$tmp/tflite_schema.fbs"
planus rust -o src/tflite/schema/generated.rs "$tmp/tflite_schema.fbs"
# Name the schema as the repository knows it, not the temporary copy.
sed -i "s#$tmp/tflite_schema.fbs#shared/specs/tflite_schema.fbs#g" src/tflite/schema/generated.rs
