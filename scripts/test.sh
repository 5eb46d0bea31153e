#!/bin/bash
# test.sh - everything CI checks, in the order that fails fastest:
# formatting, lints, docs, then all tests (unit, cross-crate and, from tests/, end-to-end),
# then the Debian package (built and checked, never installed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh

step() { printf '\n=== %s\n' "$*"; }
start=$(date +%s)

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
cargo test --workspace

step "package: build and check the .deb"
scripts/package.sh

printf '\n=== all checks passed in %ss\n' "$(( $(date +%s) - start ))"
