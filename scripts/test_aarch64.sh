#!/usr/bin/env bash
# Cross-builds petal for aarch64 (NEON kernels; Debian's cross compiler for ring's C parts) and
# runs the library's tests under qemu-user: the NEON and portable levels of every kernel, the
# decoders, the TFLite interpreter; then the JPEG decoder against TensorFlow's pixels and the
# TFLite families against LiteRT's outputs. Skips, saying why, where the Rust target or the
# Debian packages cannot be installed; a build or test failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu

skip() { echo "aarch64: skipped: $*"; exit 0; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  timeout 300 rustup target add "$target" >/dev/null 2>&1 ||
    skip "the Rust target $target cannot be installed here (rustup's server is unreachable?)"
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null; } ||
    skip "Debian's aarch64 cross compiler or qemu-user cannot be installed here"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cargo build --release --target "$target"
cargo test --release --target "$target" --lib
cargo test --release --target "$target" --test jpeg_golden
# The TFLite families against LiteRT's reference outputs, through the NEON kernels.
cargo test --release --target "$target" --test tflite_families
