#!/bin/sh
# bench-in-dom0.sh ARGS... - run by scripts/bench-box.sh as the box's PROGRAM: installs the
# binaries under test on dom0's own disk, as the Debian package would (/mnt/host is a 9p share:
# a program started from there reads its pages over 9p, 0.3-0.4 s per start under emulation,
# which xl, installed in dom0, never pays), then runs xen-bench ARGS with them.
set -eu
d=/usr/local/lib/domainmgrd-bench
mkdir -p "$d"
for f in domainmgrd domainctl domainmgrd-xlparse native-hotplug xen-bench xen-container-init; do
  cp "/mnt/host/$f" "$d/$f"
done
export DOMAINMGRD="$d/domainmgrd" DOMAINCTL="$d/domainctl" NATIVE_HOTPLUG="$d/native-hotplug"
export CONTAINER_INIT="$d/xen-container-init"
exec "$d/xen-bench" "$@"
