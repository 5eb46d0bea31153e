#!/bin/bash
# demo-in-box.sh - runs in dom0 of the Xen box (scripts/try-it.sh puts it there): domainmgrd
# manages a real PV guest from an EVE DomainConfig file, and xl shows what happened.
set -euo pipefail
export PATH=/mnt/host:$PATH
root=/tmp/demo; rm -rf $root; mkdir -p $root/zedmanager/DomainConfig
uuid=6ba7b810-9dad-11d1-80b4-00c04fd430c8
status=$root/domainmgr/DomainStatus/$uuid.json
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The status is compact JSON (as EVE's Go encodes it): one field per line for grep and sed.
fields() { tr ',{}' '\n\n\n' < "$status" 2>/dev/null; }
field() { fields | sed -n "s/^ *\"$1\": *//p" | head -1; }
wait_state() { # NAME CODE
  for _ in $(seq 600); do [ "$(field State)" = "$2" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1"; tail -20 $root/daemon.log; exit 1
}
config() { # ACTIVATE
  cat > $root/zedmanager/DomainConfig/.tmp <<EOT
{"UUIDandVersion": {"UUID": "$uuid", "Version": "1"}, "DisplayName": "demo", "Activate": $1,
 "AppNum": 1, "Kernel": "$XENBOX_GUEST_KERNEL", "Ramdisk": "$XENBOX_GUEST_RAMDISK",
 "Memory": 131072, "VCpus": 1, "ExtraArgs": "xenbox.marker=hello-from-domainmgrd",
 "VirtualizationMode": 0, "VifList": [{"Bridge": "$XENBOX_BRIDGE", "Vif": "nbu1x1", "MTU": 1500}]}
EOT
  mv $root/zedmanager/DomainConfig/.tmp $root/zedmanager/DomainConfig/$uuid.json
}

say "dom0 of a real Xen $(xl info | sed -n 's/^xen_version *: //p'), seen by domainmgrd --show"
domainmgrd --show
say "start domainmgrd (EVE layout under $root)"
domainmgrd --inputs=files --run-root=$root --config-dir=$root/zedmanager --status-dir=$root/domainmgr --run-dir=$root/run \
  --config=timer.domain.shutdown:20 > $root/daemon.log 2>&1 &
daemon=$!
say "write DomainConfig/$uuid.json with Activate=true"
t0=$(date +%s.%N); config true; wait_state RUNNING 115
echo "RUNNING after $(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.1f", b-a}') s"
say "DomainStatus (excerpt)"
fields | grep -E '"(State|StateName|DomainName|DomainId|BootTime|TriedCount|VifUsed|Error)"' 
say "xl list"
xl list
name=$(field DomainName | tr -d '"')
for _ in $(seq 300); do grep -q XENBOX-GUEST-READY /var/log/xen/console/guest-$name.log 2>/dev/null && break; sleep 0.1; done
say "the guest's console"
grep -a XENBOX /var/log/xen/console/guest-$name.log | tr -d '\r'
say "Activate=false: graceful shutdown"
config false; wait_state HALTED 119
fields | grep -E '"(StateName|DomainId)"' 
xl list
say "what domainmgrd logged"
cat $root/daemon.log
kill -TERM $daemon; wait $daemon || true
