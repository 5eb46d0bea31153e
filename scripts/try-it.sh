#!/bin/bash
# try-it.sh - boots real Xen 4.17 under QEMU (the test box; built on first use, a few minutes)
# and shows domainmgrd managing a real guest there from an EVE config file. Needs root for the
# first build of the box (it uses sudo if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p domainmgrd --bin domainmgrd
box=(tests/xen-box/run.sh --timeout 900 --file target/release/domainmgrd -- scripts/demo-in-box.sh)
if [ "$(id -u)" = 0 ]; then exec "${box[@]}"; else exec sudo "${box[@]}"; fi
