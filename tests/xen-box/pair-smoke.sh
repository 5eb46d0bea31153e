#!/bin/bash
# pair-smoke.sh - smoke test of a pair of Xen test boxes, run in dom0 of box 1:
#   tests/xen-box/run-pair.sh -- tests/xen-box/pair-smoke.sh
# Checks what tests between two Xen hosts rely on: box 2's dom0 answers ping6 and ssh (as root, by
# key, non-interactive) over xenbr0, and ssh back from box 2 to box 1; both are different hosts;
# `xl list` on box 2 shows its dom0; with /mnt/host/domainctl given (--file), ssh finds it on the
# PATH; and guests of both boxes share one Ethernet segment: a PV test guest created on box 2 over
# ssh (vif on xenbr0, MAC 00:16:3e:00:00:42) answers ping6 at its EUI-64 link-local address
# fe80::216:3eff:fe00:42 from box 1's dom0, with its own MAC in box 1's neighbour table, and no
# longer once destroyed. At the end (whatever happened) it ends the pair: box 2 powers off.
# Prints PASS/FAIL per check and "N passed, M failed"; exits 1 if anything failed.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
: "${XENBOX_GUEST_KERNEL:?not in the Xen test box (run me with tests/xen-box/run-pair.sh)}"
: "${XENBOX_PEER_ADDR:?not in a pair of boxes (run me with tests/xen-box/run-pair.sh)}"
BR=$XENBOX_BRIDGE
PEER="$XENBOX_PEER_ADDR%$BR"
SELF="$XENBOX_SELF_ADDR%$BR"
GUEST=pair-smoke-$$
GUEST_MAC=00:16:3e:00:00:42
GUEST_LL=fe80::216:3eff:fe00:42
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
  [ -z "$out" ] || tail -n 15 <<<"$out" | sed 's/^/    | /'
  return 1
}
# wait_until SECONDS CMD... : poll CMD until it succeeds; 1 when the deadline passes first.
wait_until() {
  local deadline=$(( $(ms) + $1 * 1000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(ms)" -lt "$deadline" ] || return 1
    sleep 0.5
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
# shellcheck disable=SC2029  # the command line is meant to be expanded here, run there
peer() { ssh "$PEER" "$@"; }
# equal WHAT EXPECTED GOT : 0 if equal, else says so.
equal() { [ "$2" = "$3" ] || { echo "$1: expected '$2', got '$3'"; return 1; }; }
differ() { [ "$2" != "$3" ] || { echo "$1: both '$2'"; return 1; }; }
guest_ready() { peer grep -aq XENBOX-GUEST-READY "$XENBOX_CONSOLE_LOG_DIR/guest-$GUEST.log"; }
guest_gone() { ! peer xl domid "$GUEST" >/dev/null 2>&1; }
no_answer() { ! ping6 -c 2 -W 2 "$1"; }
end_pair() {
  peer xl destroy "$GUEST" >/dev/null 2>&1
  if peer touch /run/xenbox/peer-done; then echo "ended the pair (peer-done on box 2)"
  else echo "could not touch /run/xenbox/peer-done on box 2: run-pair.sh will stop it"
  fi
}
trap end_pair EXIT

echo "box $XENBOX_INDEX: dom0 $XENBOX_SELF_ADDR, peer $XENBOX_PEER_ADDR on $BR"
# --- the dom0s
expect "ping6 $PEER" 60 ping6 -c 1 -W 2 "$PEER"
check "ping6 -c 5 $PEER" ping6 -c 5 -i 0.2 -W 2 "$PEER"
check "ssh $PEER true" peer true
t=$(ms); out=$(peer xl list 2>&1)
if grep -q '^Domain-0 ' <<<"$out"; then pass "ssh $PEER xl list: Domain-0" "$(elapsed "$t")"
else fail "ssh $PEER xl list" "no Domain-0 in: $out"
fi
my_boot=$(cat /proc/sys/kernel/random/boot_id)
check "box 2 is another host (boot_id)" differ "boot_id" "$my_boot" "$(peer cat /proc/sys/kernel/random/boot_id)"
check "box 2 is fe80::${XENBOX_PEER_ADDR#fe80::} on $BR" \
  sh -c "ssh '$PEER' ip -6 addr show dev $BR | grep -q 'inet6 $XENBOX_PEER_ADDR/64'"
check "ssh back from box 2 to $SELF" \
  equal "box 1's boot_id seen from box 2" "$my_boot" "$(peer ssh "$SELF" cat /proc/sys/kernel/random/boot_id 2>&1)"
if [ -f /mnt/host/domainctl ]; then
  check "ssh $PEER finds domainctl on the PATH" \
    equal "command -v domainctl" /usr/local/sbin/domainctl "$(peer command -v domainctl 2>&1)"
else
  echo "SKIP ssh finds domainctl (no /mnt/host/domainctl: pass it with --file)"
fi

# --- a guest on box 2, pinged from box 1's dom0 across the link
{
  echo "name = \"$GUEST\""
  echo 'type = "pv"'
  echo "kernel = \"$XENBOX_GUEST_KERNEL\""
  echo "ramdisk = \"$XENBOX_GUEST_RAMDISK\""
  echo 'extra = "console=hvc0 loglevel=4 xenbox.marker=pair-smoke"'
  echo 'memory = 128'
  echo 'vcpus = 1'
  echo 'on_poweroff = "destroy"'
  echo "vif = [ 'bridge=$BR,mac=$GUEST_MAC' ]"
} | peer "cat > /tmp/$GUEST.cfg"
if check "ssh $PEER xl create (guest $GUEST, vif $GUEST_MAC on $BR)" peer xl create "/tmp/$GUEST.cfg"; then
  expect "guest on box 2 ready" 180 guest_ready
  check "guest sees its vif" peer grep -aq "'XENBOX-GUEST-NET eth0 $GUEST_MAC'" "$XENBOX_CONSOLE_LOG_DIR/guest-$GUEST.log"
  expect "ping6 the guest on box 2 from box 1: $GUEST_LL%$BR" 60 ping6 -c 1 -W 2 "$GUEST_LL%$BR"
  check "ping6 -c 5 the guest" ping6 -c 5 -i 0.2 -W 2 "$GUEST_LL%$BR"
  check "box 1's neighbour $GUEST_LL is $GUEST_MAC (one L2 segment)" \
    sh -c "ip -6 neigh show dev $BR | grep -i '^$GUEST_LL lladdr $GUEST_MAC'"
  check "ssh $PEER xl destroy $GUEST" peer xl destroy "$GUEST"
  expect "guest gone" 30 guest_gone
  check "the destroyed guest no longer answers" no_answer "$GUEST_LL%$BR"
fi

echo "$PASSED passed, $FAILED failed ($(elapsed $((T_START / 1000))))"
[ "$FAILED" = 0 ]
