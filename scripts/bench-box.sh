#!/bin/bash
# bench-box.sh [devices|containers] - benchmarks on real Xen in the box: domainmgrd side by side
# with xl (one guest, four guests, poweroff -> HALTED latency, host boot/stop of eight guests,
# metrics); with `devices`, the native device setup's instead (create/destroy with a vif, a disk,
# both; four and eight guests at once vs the xendomains loop and parallel xl); with `containers`,
# a container's start to its first line over 9pfs vs the same image as a VM from a disk.
# Prints a Markdown table. The box gets 3 GiB (dom0 keeps 1 GiB) so eight guests fit.
# Release builds; the box must be buildable (tests/xen-box/build.sh, root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh
cargo build --release -q -p domainmgrd --bins -p xen-tests --bin xen-bench
init=$(scripts/build-container-init.sh -q | tail -n 1)
# The binaries are installed on dom0's disk before they run (tests/xen-box/bench-in-dom0.sh), as
# xl is: started from the 9p share, each domainctl would pay 0.3-0.4 s of page reads.
XENBOX_MEM=${XENBOX_MEM:-3072} exec tests/xen-box/run.sh --timeout 3600 \
  --file target/release/domainmgrd --file target/release/domainctl --file target/release/domainmgrd-xlparse \
  --file packaging/libexec/native-hotplug --file target/release/xen-bench --file "$init" \
  -- tests/xen-box/bench-in-dom0.sh "$@"
