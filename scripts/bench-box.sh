#!/bin/bash
# bench-box.sh [devices|containers|disk-copies|migrate] - benchmarks on real Xen in the box: domainmgrd side by side
# with xl (one guest, four guests, poweroff -> HALTED latency, host boot/stop of eight guests,
# metrics); with `devices`, the native device setup's instead (create/destroy with a vif, a disk,
# both; four and eight guests at once vs the xendomains loop and parallel xl); with `containers`,
# a container's start to its first line over 9pfs vs the same image as a VM from a disk; with
# `disk-copies`, a guest's first boot from its own copy of a 1 GiB shared image by each method;
# with `migrate`, in a pair of boxes (tests/xen-box/run-pair.sh), a 128 MiB guest's live
# migration to the other box by domainctl and by xl: time and the guest's downtime.
# Prints a Markdown table. The box gets 3 GiB (dom0 keeps 1 GiB) so eight guests fit.
# Release builds; the box must be buildable (tests/xen-box/build.sh, root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh
cargo build --release -q -p domainmgrd --bins -p xen-tests --bin xen-bench
init=$(scripts/build-container-init.sh -q | tail -n 1)
# The binaries are installed on dom0's disk before they run (tests/xen-box/bench-in-dom0.sh), as
# xl is: started from the 9p share, each domainctl would pay 0.3-0.4 s of page reads.
# disk-copies: two more disks for dom0, an XFS with reflink and an ext4, made afresh each run.
if [ "${1:-}" = disk-copies ]; then
  command -v mkfs.xfs >/dev/null || { echo "bench-box.sh: disk-copies needs mkfs.xfs (apt-get install xfsprogs)" >&2; exit 1; }
  scratch=${TMPDIR:-/var/tmp}/xenbench-disks
  mkdir -p "$scratch"
  rm -f "$scratch"/xfs.img "$scratch"/ext4.img
  truncate -s 6G "$scratch"/xfs.img "$scratch"/ext4.img
  mkfs.xfs -q -m reflink=1 "$scratch"/xfs.img
  mkfs.ext4 -q -F "$scratch"/ext4.img
  export XENBOX_QEMU_EXTRA="-drive id=bxfs,if=none,file=$scratch/xfs.img,format=raw,cache=unsafe -device virtio-blk-pci,drive=bxfs,addr=0x10 -drive id=bext4,if=none,file=$scratch/ext4.img,format=raw,cache=unsafe -device virtio-blk-pci,drive=bext4,addr=0x11"
fi
runner=tests/xen-box/run.sh
[ "${1:-}" = migrate ] && runner=tests/xen-box/run-pair.sh
XENBOX_MEM=${XENBOX_MEM:-3072} exec "$runner" --timeout 3600 \
  --file target/release/domainmgrd --file target/release/domainctl --file target/release/domainmgrd-xlparse \
  --file packaging/libexec/native-hotplug --file target/release/xen-bench --file "$init" \
  -- tests/xen-box/bench-in-dom0.sh "$@"
