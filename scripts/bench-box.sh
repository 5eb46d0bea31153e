#!/bin/bash
# bench-box.sh - benchmarks on real Xen in the box: domainmgrd side by side with xl
# (one guest, four guests, poweroff -> HALTED latency). Prints a Markdown table.
# Release builds; the box must be buildable (tests/xen-box/build.sh, root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p domainmgrd --bin domainmgrd -p xen-tests --bin xen-bench
exec tests/xen-box/run.sh --timeout 2400 --file target/release/domainmgrd \
  --env DOMAINMGRD=/mnt/host/domainmgrd -- target/release/xen-bench
