#!/bin/bash
# try-it.sh - boots real Xen 4.17 under QEMU (the test box; built on first use, a few minutes)
# and shows domainmgrd managing a real guest there from an EVE config file. The first build of the
# box needs root: tests/xen-box/build.sh uses sudo for it when run by another user.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh
cargo build --release -q -p domainmgrd --bin domainmgrd
box=(tests/xen-box/run.sh --timeout 900 --file target/release/domainmgrd -- scripts/demo-in-box.sh)
exec "${box[@]}"
