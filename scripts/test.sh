#!/bin/bash
# test.sh - everything CI checks, in the order that fails fastest:
# formatting, lints, docs, then all tests (unit, cross-crate and, from tests/, end-to-end),
# then every fuzz target for FUZZ_SECONDS each (default 30; 0 skips them), then the Debian
# package (built and checked, never installed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh

step() { printf '\n=== %s\n' "$*"; }
start=$(date +%s)

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
cargo test --workspace

fuzz_seconds=${FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" != 0 ]; then
  step "fuzz: every target for $fuzz_seconds s (scripts/fuzz.sh; a crash fails)"
  fuzz_start=$(date +%s)
  scripts/fuzz.sh --seconds "$fuzz_seconds"
  echo "fuzz: build and runs took $(( $(date +%s) - fuzz_start ))s"
fi

step "package: build and check the .deb"
scripts/package.sh

printf '\n=== all checks passed in %ss\n' "$(( $(date +%s) - start ))"
