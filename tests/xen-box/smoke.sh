#!/bin/bash
# smoke.sh - smoke test of the Xen test box, run in dom0:
#   tests/xen-box/run.sh -- tests/xen-box/smoke.sh [SECTION...]
# Drives the test guest (files/guest-init) with `xl` through each of its knobs and the toolstack
# features our end-to-end tests rely on: create/shutdown/destroy, pause, vif on xenbr0, crash,
# reboot, poweroff, ignored shutdown, CPU burn, a raw file disk, save/restore, PCI passthrough of
# one of the box's e1000s. Prints PASS/FAIL per check and "N passed, M failed" at the end; exits 1
# if anything failed. Sections (all by default): toolstack lifecycle pause crash reboot poweroff
# ignore busy disk save pci.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
: "${XENBOX_GUEST_KERNEL:?not in the Xen test box (run me with tests/xen-box/run.sh)}"
CL=$XENBOX_CONSOLE_LOG_DIR
SECTIONS=${*:-toolstack lifecycle pause crash reboot poweroff ignore busy disk save pci}
PASSED=0 FAILED=0
T_START=${EPOCHREALTIME/./}

ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
elapsed() { local d=$(( $(ms) - $1 )); printf '%d.%02ds' $((d / 1000)) $(((d % 1000) / 10)); }
pass() { PASSED=$((PASSED + 1)); echo "PASS $1${2:+ ($2)}"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: $2"; }
# check NAME CMD... : PASS if CMD succeeds, else FAIL with its output.
check() {
  local name=$1 t out; shift
  t=$(ms)
  if out=$("$@" 2>&1); then pass "$name" "$(elapsed "$t")"; return 0; fi
  fail "$name" "'$*' failed"
  [ -z "$out" ] || sed 's/^/    | /' <<<"$out" | tail -n 15
  return 1
}
# wait_until SECONDS CMD... : poll CMD until it succeeds; 1 when the deadline passes first.
wait_until() {
  local deadline=$(( $(ms) + $1 * 1000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(ms)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
# expect NAME SECONDS CMD... : PASS once CMD succeeds within SECONDS, else FAIL.
expect() {
  local name=$1 secs=$2 t; shift 2
  t=$(ms)
  if wait_until "$secs" "$@"; then pass "$name" "$(elapsed "$t")"; return 0; fi
  fail "$name" "'$*' still false after ${secs}s"
  return 1
}
log_has() { grep -aq -- "$2" "$CL/guest-$1.log" 2>/dev/null; }
log_count() { grep -ac -- "$2" "$CL/guest-$1.log" 2>/dev/null; }
exists() { xl domid "$1" >/dev/null 2>&1; }
gone() { ! exists "$1"; }
# state NAME: xl's six state flags (r b p s c d, '-' when unset), e.g. "-b----".
state() { xl list "$1" 2>/dev/null | awk 'NR == 2 {print $5}'; }
state_has() { [[ "$(state "$1")" == *"$2"* ]]; }
running() { local s; s=$(state "$1"); [[ "$s" == *r* || "$s" == *b* ]] && [[ "$s" != *[psc]* ]]; }
driver_is() { [ "$(basename "$(readlink "/sys/bus/pci/devices/$1/driver")")" = "$2" ]; }
cpu_time() { xl list "$1" 2>/dev/null | awk 'NR == 2 {print $6}'; }
show_console() {  # on failure: the end of a guest's console log
  echo "    console of $1:"; tail -n 12 "$CL/guest-$1.log" 2>/dev/null | tr -d '\r' | sed 's/^/    | /'
}

# guest_cfg NAME KNOBS [CONFIG-LINE...] : write /tmp/NAME.cfg for the test guest.
guest_cfg() {
  local name=$1 knobs=$2; shift 2
  {
    echo "name = \"$name\""
    echo 'type = "pv"'
    echo "kernel = \"$XENBOX_GUEST_KERNEL\""
    echo "ramdisk = \"$XENBOX_GUEST_RAMDISK\""
    echo "extra = \"console=hvc0 loglevel=4 $knobs\""
    echo 'memory = 128'
    echo 'vcpus = 1'
    echo 'on_poweroff = "destroy"'
    echo 'on_reboot = "restart"'
    echo 'on_crash = "preserve"'
    printf '%s\n' "$@"
  } > "/tmp/$name.cfg"
}
# start NAME KNOBS [CONFIG-LINE...] : create the guest and wait until it is ready.
start() {
  local name=$1
  guest_cfg "$@"
  rm -f "$CL/guest-$name.log"
  check "$name: xl create" xl create "/tmp/$name.cfg" || return 1
  expect "$name: guest ready" 90 log_has "$name" XENBOX-GUEST-READY || { show_console "$name"; return 1; }
}
cleanup() {
  local d
  for d in $(xl list | awk 'NR > 1 && $1 ~ /^smoke-/ {print $1}'); do xl destroy "$d" 2>/dev/null; done
}
trap cleanup EXIT

# ----------------------------------------------------------------------------------- sections
sec_toolstack() {
  check "xl info: Xen 4.17" sh -c 'xl info | grep -E "^xen_(major|minor)" | tr -d " " | paste -sd, | grep -qx "xen_major:4,xen_minor:17"'
  check "xl list: Domain-0" sh -c 'xl list | grep -q "^Domain-0 "'
  check "bridge xenbr0 up" sh -c 'ip -br link show xenbr0 | grep -qw UP || ip -br link show xenbr0 | grep -q UNKNOWN'
  check "guest kernel/ramdisk present" test -s "$XENBOX_GUEST_KERNEL" -a -s "$XENBOX_GUEST_RAMDISK"
  check "guest kernel is an uncompressed ELF" sh -c "head -c 4 '$XENBOX_GUEST_KERNEL' | grep -q ELF"
  check "dom0 NIC $XENBOX_DOM0_NIC on e1000" driver_is "$XENBOX_DOM0_NIC" e1000
  check "spare NIC $XENBOX_PASSTHROUGH_NIC on e1000" driver_is "$XENBOX_PASSTHROUGH_NIC" e1000
  check "IOMMU enabled in Xen" sh -c 'xl info | grep -E "^virt_caps" | grep -q directio || xl dmesg | grep -qi "I/O virtualisation enabled"'
}

sec_lifecycle() {
  local g=smoke-life mac=00:16:3e:5a:00:01 d
  start $g "xenbox.marker=hello-smoke" "vif = [ 'bridge=xenbr0,mac=$mac' ]" || return
  d=$(xl domid $g)
  check "$g: marker on console" log_has $g "XENBOX-MARKER hello-smoke"
  check "$g: guest sees its vif" log_has $g "XENBOX-GUEST-NET eth0 $mac"
  check "$g: running in xl list" running $g
  check "$g: vif backend connected" sh -c "[ \"\$(xenstore-read /local/domain/0/backend/vif/$d/0/state)\" = 4 ]"
  check "$g: vif$d.0 on xenbr0" test -e "/sys/class/net/xenbr0/brif/vif$d.0"
  # EUI-64 link-local address of the guest's MAC (the guest brings eth0 up, the kernel adds it).
  local ll=fe80::216:3eff:fe5a:1
  expect "$g: ping6 $ll over xenbr0" 30 ping -6 -c 1 -W 2 "$ll%xenbr0"
  # `xl shutdown -w` returns once the guest has shut down; xl's monitor destroys it a bit later.
  check "$g: xl shutdown -w" timeout 60 xl shutdown -w $g
  check "$g: guest powered itself off" log_has $g XENBOX-GUEST-POWEROFF
  expect "$g: gone after shutdown" 30 gone $g || return
  start $g "" || return
  check "$g: xl destroy" xl destroy $g
  check "$g: gone after destroy" gone $g
}

sec_pause() {
  local g=smoke-pause
  guest_cfg $g ""
  rm -f "$CL/guest-$g.log"
  check "$g: xl create -p" xl create -p /tmp/$g.cfg || return
  check "$g: paused" state_has $g p
  check "$g: xl unpause" xl unpause $g
  expect "$g: guest ready after unpause" 90 log_has $g XENBOX-GUEST-READY || show_console $g
  xl destroy $g 2>/dev/null
}

sec_crash() {
  local g=smoke-crash
  start $g "xenbox.crash_after=2" || return
  expect "$g: crashed (state c, preserved)" 60 state_has $g c || { xl list; show_console $g; }
  check "$g: guest said it crashes" log_has $g XENBOX-GUEST-CRASHING
  check "$g: xl destroy crashed domain" xl destroy $g
}

sec_reboot() {
  local g=smoke-reboot d1
  start $g "xenbox.reboot_after=2" || return
  d1=$(xl domid $g)
  # on_reboot=restart: the toolstack rebuilds the domain under a new domid, the guest boots again
  # (and again and again: reboot_after applies at every boot).
  expect "$g: rebooted itself (new domid)" 60 sh -c "d=\$(xl domid $g) && [ \"\$d\" != $d1 ]" ||
    { xl list; show_console $g; return; }
  xl destroy $g 2>/dev/null
  local h=smoke-xlreboot
  start $h "" || return
  d1=$(xl domid $h)
  check "$h: xl reboot" xl reboot $h
  expect "$h: rebooted on request (new domid)" 60 sh -c "d=\$(xl domid $h) && [ \"\$d\" != $d1 ]" ||
    { xl list; show_console $h; return; }
  expect "$h: ready again after reboot" 90 sh -c "[ \$(grep -ac XENBOX-GUEST-READY $CL/guest-$h.log) -ge 2 ]"
  check "$h: xl destroy" xl destroy $h
}

sec_poweroff() {
  local g=smoke-poweroff
  start $g "xenbox.poweroff_after=2" 'on_poweroff = "preserve"' || return
  expect "$g: powered itself off (state s, preserved)" 60 state_has $g s || { xl list; show_console $g; }
  check "$g: not crashed" sh -c "! xl list $g | awk 'NR == 2 {print \$5}' | grep -q c"
  xl destroy $g 2>/dev/null
}

sec_ignore() {
  local g=smoke-ignore d
  start $g "xenbox.ignore_shutdown=1" || return
  d=$(xl domid $g)
  check "$g: xl shutdown (request only)" xl shutdown $g
  expect "$g: guest ignored the shutdown" 30 log_has $g XENBOX-GUEST-IGNORED-SHUTDOWN
  check "$g: xl reboot (request only)" xl reboot $g
  expect "$g: guest ignored the reboot" 30 log_has $g XENBOX-GUEST-IGNORED-REBOOT || show_console $g
  check "$g: still running, same domid" sh -c "[ \"\$(xl domid $g)\" = $d ]"
  check "$g: still running" running $g
  check "$g: xl shutdown -w times out" sh -c "! timeout 5 xl shutdown -w $g"
  check "$g: xl destroy" xl destroy $g
}

sec_busy() {
  local g=smoke-busy t0
  start $g "xenbox.busy=1" || return
  t0=$(cpu_time $g)
  expect "$g: CPU time grows by 2 s" 40 sh -c "xl list $g | awk -v t0=$t0 'NR == 2 {exit !(\$6 >= t0 + 2)}'" ||
    xl list $g
  xl destroy $g 2>/dev/null
}

sec_disk() {
  local g=smoke-disk img=/tmp/smoke-disk.img
  rm -f $img; truncate -s 64M $img
  start $g "" "disk = [ 'format=raw,vdev=xvda,access=rw,target=$img' ]" || return
  check "$g: guest sees xvda of 64 MiB" log_has $g "XENBOX-GUEST-BLOCK xvda 131072"
  check "$g: xl block-list" sh -c "xl block-list $g | grep -q '^51712 '"
  check "$g: xl shutdown -w" timeout 60 xl shutdown -w $g
  expect "$g: loop device released" 30 sh -c "! losetup -a | grep -q $img"
  rm -f $img
}

sec_save() {
  local g=smoke-save f=/tmp/smoke-save.img
  start $g "xenbox.marker=before-save" || return
  check "$g: xl save" xl save $g $f
  check "$g: gone after save" gone $g
  check "$g: xl restore" xl restore $f
  check "$g: running after restore" running $g
  # The restored guest must still be alive: it answers a shutdown request.
  check "$g: restored guest shuts down cleanly" timeout 60 xl shutdown -w $g
  check "$g: powered off after restore" log_has $g XENBOX-GUEST-POWEROFF
  rm -f $f
}

sec_pci() {
  local g=smoke-pci nic=$XENBOX_PASSTHROUGH_NIC
  check "pci: xl pci-assignable-add $nic" xl pci-assignable-add "$nic" || return
  check "pci: $nic assignable" sh -c "xl pci-assignable-list | grep -q '^$nic'"
  check "pci: $nic bound to pciback" driver_is "$nic" pciback
  if start $g "" "pci = [ '$nic' ]"; then
    check "$g: guest binds the NIC with e1000" \
      sh -c "grep -a 'XENBOX-GUEST-PCI' $CL/guest-$g.log | grep -q '8086:100e driver=e1000'" || show_console $g
    check "$g: xl pci-list" sh -c "xl pci-list $g | grep -q '${nic#0000:}'"
    check "pci: other NIC still on e1000 in dom0" driver_is "$XENBOX_DOM0_NIC" e1000
    check "$g: xl destroy" xl destroy $g
  fi
  check "pci: xl pci-assignable-remove -r $nic" xl pci-assignable-remove -r "$nic"
  expect "pci: $nic back on e1000 in dom0" 20 driver_is "$nic" e1000
}

echo "== smoke test of the Xen test box: $(uname -r), $(xl info | awk '/^xen_version/ {print "Xen", $3}')"
for s in $SECTIONS; do
  if ! declare -F "sec_$s" >/dev/null; then fail "$s" "no such section"; continue; fi
  t=$(ms)
  echo "== $s"
  "sec_$s"
  cleanup
  echo "   ($s took $(elapsed "$t"))"
done
d=$(( (${EPOCHREALTIME/./} - T_START) / 1000 ))
echo "== total $((d / 1000)).$(( (d % 1000) / 100 ))s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
