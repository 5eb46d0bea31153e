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

# CI builds a fresh clone once: incremental compilation's caches would never be read again, and
# full debug info is most of every test binary. Without both, CI's target/ ends at 6 GB instead
# of 14, and the test build takes half the time. Line tables keep panics' backtraces readable.
# A developer's own runs keep cargo's defaults.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi
# Say what the disk holds before the build fills it: a run that stops on "No space left on
# device" is then explained by its first lines.
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_disk() { df -h --output=avail "$target_dir" | tail -1 | tr -d ' '; }
echo "disk: $(free_disk) free where $target_dir is"

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
  # An unoptimized build (--dev): 3 min instead of 9 here, with the same sanitizer and debug
  # assertions, for 10 to 20 times fewer executions in these short runs (BENCHMARKS.md,
  # "Reliability"). Long runs by hand use the optimized build: scripts/fuzz.sh --runs N.
  step "fuzz: every target for $fuzz_seconds s (scripts/fuzz.sh --dev; a crash fails)"
  fuzz_start=$(date +%s)
  scripts/fuzz.sh --dev --seconds "$fuzz_seconds"
  echo "fuzz: build and runs took $(( $(date +%s) - fuzz_start ))s"
fi

step "package: build and check the .deb"
scripts/package.sh

echo "disk: $target_dir holds $(du -sh "$target_dir" | cut -f1), fuzz/target $(du -sh fuzz/target 2>/dev/null | cut -f1); $(free_disk) left free"
printf '\n=== all checks passed in %ss\n' "$(( $(date +%s) - start ))"
