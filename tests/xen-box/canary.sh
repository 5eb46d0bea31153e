#!/bin/bash
# canary.sh - in dom0 of the Xen box: is dom0 still computing correctly while guests come and go?
#
# Two workers repeat glibc-heavy commands (grep -c, cmp, md5sum over a 13 MB file) and compare each
# result with the first one, while the foreground creates a guest, lets it boot a little and
# destroys it, over and over, for DUR seconds. Under a vCPU model with XSAVE, TCG corrupts dom0's
# user state this way (wrong results, segfaults in xl, oxenstored or bash): a box configuration
# must pass this, many runs over, before tests rely on it.
#
# Environment: DUR (seconds, default 90); GUEST (pv, pvh, hvm or none; default pv); GUESTS (how many
# run at once, default 1). Prints one line per finding and a summary; exits 0 when clean, 1 when
# anything went wrong (a mismatch, a segfault or trap in dmesg, an xl crash, a guest that did not
# come up).
#   tests/xen-box/run.sh -- tests/xen-box/canary.sh
#   tests/xen-box/run.sh --env GUEST=pvh --env DUR=120 -- tests/xen-box/canary.sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DUR=${DUR:-90} GUEST=${GUEST:-pv} GUESTS=${GUESTS:-1}
work=$(mktemp -d)
seq 1 2000000 > "$work/data"; cp "$work/data" "$work/data2"
want_grep=$(grep -c 7 "$work/data"); want_md5=$(md5sum < "$work/data")
echo "canary: guest=$GUEST x$GUESTS for ${DUR}s; vCPU flags: $(grep -o -w -E 'xsave|xsaveopt|xsavec|xsaves|avx|avx2|rdtscp|svm' /proc/cpuinfo | sort -u | tr '\n' ' ')"
dmesg_before=$(dmesg | grep -c -E 'segfault|traps:')

worker() {
  local w=$1 it=0 bad=0 g m rc1 rc2 rc3
  while [ ! -e "$work/stop" ]; do
    it=$((it + 1))
    g=$(grep -c 7 "$work/data"); rc1=$?
    cmp -s "$work/data" "$work/data2"; rc2=$?
    m=$(md5sum < "$work/data"); rc3=$?
    if [ "$g" != "$want_grep" ] || [ $rc1 -gt 1 ] || [ $rc2 != 0 ] || [ "$m" != "$want_md5" ] || [ $rc3 != 0 ]; then
      bad=$((bad + 1))
      echo "canary: worker $w iteration $it: MISMATCH grep=$g($rc1) cmp=$rc2 md5=$m($rc3)"
    fi
  done
  echo "$it $bad" > "$work/worker$w"
}
worker 1 & worker 2 &

guest_cfg() {  # NAME
  case "$GUEST" in
    pv|pvh)
      printf 'name = "%s"\ntype = "%s"\nkernel = "%s"\nramdisk = "%s"\nextra = "console=hvc0 loglevel=4"\nmemory = 128\n' \
        "$1" "$GUEST" "$XENBOX_GUEST_KERNEL" "$XENBOX_GUEST_RAMDISK" ;;
    hvm)  # SeaBIOS boots the kernel (QEMU's -kernel); the console is the emulated serial port
      printf 'name = "%s"\ntype = "hvm"\nkernel = "%s"\nramdisk = "%s"\nextra = "console=ttyS0 loglevel=1"\nmemory = 256\nvnc = 0\nserial = "file:%s"\n' \
        "$1" "$XENBOX_GUEST_KERNEL_COMPRESSED" "$XENBOX_GUEST_RAMDISK" "$work/$1.serial" ;;
  esac > "$work/$1.cfg"
}
guest_log() {  # NAME
  if [ "$GUEST" = hvm ]; then echo "$work/$1.serial"; else echo "$XENBOX_CONSOLE_LOG_DIR/guest-$1.log"; fi
}
t0=$(date +%s) cycles=0 xl_bad=0 not_up=0
while [ $(( $(date +%s) - t0 )) -lt "$DUR" ]; do
  [ "$GUEST" = none ] && { sleep 1; continue; }
  names=()
  for i in $(seq 1 "$GUESTS"); do
    n="canary-$cycles-$i"; names+=("$n"); guest_cfg "$n"
    out=$(xl create "$work/$n.cfg" 2>&1) || { xl_bad=$((xl_bad + 1)); echo "canary: xl create $n failed: $out"; }
  done
  for n in "${names[@]}"; do
    log=$(guest_log "$n") tries=60
    [ "$GUEST" = hvm ] && tries=480   # an HVM guest takes a minute or two to boot under TCG
    for _ in $(seq 1 "$tries"); do grep -q XENBOX-GUEST-READY "$log" 2>/dev/null && break; sleep 0.5; done
    grep -q XENBOX-GUEST-READY "$log" 2>/dev/null || { not_up=$((not_up + 1)); echo "canary: $n did not come up"; }
    xl destroy "$n" > /dev/null 2>&1 || { xl_bad=$((xl_bad + 1)); echo "canary: xl destroy $n failed"; }
  done
  cycles=$((cycles + 1))
done
touch "$work/stop"; wait
read -r it1 bad1 < "$work/worker1"; read -r it2 bad2 < "$work/worker2"
traps=$(( $(dmesg | grep -c -E 'segfault|traps:') - dmesg_before ))
[ "$traps" -gt 0 ] && dmesg | grep -E 'segfault|traps:' | tail -5 | sed 's/^/canary: dmesg: /'
echo "canary: summary guest=$GUEST cycles=$cycles worker_iterations=$((it1 + it2)) mismatches=$((bad1 + bad2)) traps=$traps xl_failures=$xl_bad guests_not_up=$not_up"
rm -rf "$work"
[ $((bad1 + bad2 + traps + xl_bad + not_up)) -eq 0 ]
