#!/bin/bash
# run-pair.sh - boot two Xen test boxes side by side, joined by a QEMU socket link, and run a
# program as root in dom0 of box 1 (tests between two Xen hosts: live migration).
#
# Usage:
#   tests/xen-box/run-pair.sh [RUN.SH OPTIONS] [--peer-env NAME=VALUE]... [--peer-file PATH]...
#                             -- PROGRAM [ARGS...]
#
# 1. Builds the box (build.sh, unless --no-build) and makes a fresh ed25519 key pair in this run's
#    own temporary directory (removed at the end; never in the repo, never cached).
# 2. Boots box 2: run.sh --peer-link listen:PORT --box-index 2 (PORT a free loopback TCP port)
#    running pair-peer.sh, which waits for box 1's program to end the pair (below).
# 3. When box 2's QEMU listens on PORT, boots box 1: run.sh --peer-link connect:PORT --box-index 1
#    running PROGRAM, and exits with its status.
# Both boxes get the run.sh options and the key (as --file xenbox-pair-ssh/); box 2 also gets the
# --peer-env and --peer-file ones. In each dom0, files/dom0-pair puts the link's NIC into xenbr0
# (dom0 fe80::1 on box 1, fe80::2 on box 2; the guests of both boxes share that Ethernet segment,
# IPv6 link-local only), installs the key for root, starts sshd and waits until the peer's sshd
# answers: when PROGRAM starts, `ssh "$XENBOX_PEER_ADDR%$XENBOX_BRIDGE" CMD` works (as root, no
# prompts; /mnt/host/domainctl, domainmgrd and domainmgrd-xlparse, when given with --file, are
# linked into /usr/local/sbin, on its PATH).
#
# Ending the pair: box 1's PROGRAM should end with
#   ssh "$XENBOX_PEER_ADDR%$XENBOX_BRIDGE" touch /run/xenbox/peer-done
# (box 2 then powers off by itself). Whatever happens, run-pair.sh stops box 2 when box 1 has
# ended (at once if box 2 did not see peer-done) and leaves no QEMU behind.
#
# Options: those of run.sh but --interactive, --box-index and --peer-link (run-pair.sh sets them):
# --timeout S (box 1's, default 1200; box 2 gets 300 s more, it boots first and must outlive box 1),
# --boot-timeout S, --file PATH, --env NAME=VALUE, --keep, --no-build, --quiet; and
#   --peer-env NAME=VALUE  export NAME=VALUE to box 2's dom0 only; repeatable.
#   --peer-file PATH       copy PATH into box 2's share only; repeatable.
#   --help, -h             this text.
#
# Box 1 is run.sh as usual: PROGRAM's output on stdout, run.sh's progress on stderr. Box 2's
# run.sh output (its progress, pair-peer.sh's lines, on failure its serial tail) goes to
# $CACHE_DIR/logs/pair-<run>.box2 (the last 40 kept) and, unless --quiet, to stderr with lines
# prefixed "[box 2] "; the paths of that file and of box 2's serial log are printed at the end.
#
# In box 1's dom0 PROGRAM finds run.sh's variables (XENBOX_GUEST_KERNEL & co.) and
#   XENBOX_INDEX=1  XENBOX_SELF_ADDR=fe80::1  XENBOX_PEER_ADDR=fe80::2  XENBOX_BRIDGE=xenbr0
# (box 2's pair-peer.sh sees XENBOX_INDEX=2, XENBOX_SELF_ADDR=fe80::2, XENBOX_PEER_ADDR=fe80::1).
#
# Exit status: PROGRAM's (run.sh's codes for box 1: 124 timeout, 125 box 1 failed, ...); 125 when
# box 2 failed to boot (or its QEMU never listened); 130 when interrupted; 2 for a usage error.
#
# Knobs (environment): as run.sh (CACHE_DIR, XENBOX_MEM, ...), for both boxes.
set -uo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE_DIR="${CACHE_DIR:-$REPO/target/xen-box}"
BUILD_TIMEOUT="${XENBOX_BUILD_TIMEOUT:-1800}"
T0=$SECONDS
QUIET=0
say() { [ "$QUIET" = 1 ] || echo "[xen-pair +$((SECONDS - T0))s] $*" >&2; }
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
usage_error() { echo "run-pair.sh: $*" >&2; echo "Try 'run-pair.sh --help'." >&2; exit 2; }

# ------------------------------------------------------------------------------ arguments
TIMEOUT=1200 BUILD=1
SHARED=() PEER_OPTS=() CHECK_FILES=() CHECK_ENVS=()
while [ $# -gt 0 ]; do
  opt=$1 val=''
  case "$opt" in
    --*=*) val=${opt#*=} opt=${opt%%=*} ;;
    --timeout|--boot-timeout|--file|--env|--peer-env|--peer-file)
      [ $# -ge 2 ] || usage_error "$opt needs a value"
      val=$2; shift ;;
  esac
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    -i|--interactive) usage_error "--interactive is not for a pair (boot the boxes with run.sh --peer-link)" ;;
    --box-index|--peer-link) usage_error "$opt is set by run-pair.sh" ;;
    -q|--quiet) QUIET=1 ;;
    --keep) SHARED+=(--keep) ;;
    --no-build) BUILD=0 ;;
    --timeout) TIMEOUT=$val ;;
    --boot-timeout)
      [[ "$val" =~ ^[1-9][0-9]*$ ]] || usage_error "timeouts are whole seconds > 0, not '$val'"
      SHARED+=(--boot-timeout "$val") ;;
    --file) SHARED+=(--file "$val"); CHECK_FILES+=("$val") ;;
    --env) SHARED+=(--env "$val"); CHECK_ENVS+=("$val") ;;
    --peer-file) PEER_OPTS+=(--file "$val"); CHECK_FILES+=("$val") ;;
    --peer-env) PEER_OPTS+=(--env "$val"); CHECK_ENVS+=("$val") ;;
    --) shift; break ;;
    -*) usage_error "unknown option $opt" ;;
    *) break ;;
  esac
  shift
done
PROGRAM=("$@")
[ ${#PROGRAM[@]} -gt 0 ] || usage_error "no PROGRAM given"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || usage_error "timeouts are whole seconds > 0, not '$TIMEOUT'"
for e in "${CHECK_ENVS[@]}"; do
  [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env and --peer-env want NAME=VALUE, not '$e'"
done
for f in "${CHECK_FILES[@]}"; do [ -e "$f" ] || usage_error "--file $f: no such file"; done
if [[ "${PROGRAM[0]}" == */* ]] && [ ! -f "${PROGRAM[0]}" ]; then
  usage_error "PROGRAM ${PROGRAM[0]}: no such file"
fi
command -v ssh-keygen >/dev/null 2>&1 ||
  { echo "run-pair.sh: ssh-keygen not found (install openssh-client): it makes the pair's key." >&2; exit 125; }

# ------------------------------------------------------------------------------ the box
if [ "$BUILD" = 1 ]; then
  # As run.sh does, once for both boxes (which then run with --no-build).
  fg=(); [ -t 0 ] && fg=(--foreground)
  CACHE_DIR="$CACHE_DIR" timeout "${fg[@]}" "$BUILD_TIMEOUT" bash "$HERE/build.sh" >&2
  rc=$?
  if [ "$rc" = 124 ]; then
    echo "run-pair.sh: building the box took longer than $BUILD_TIMEOUT s (XENBOX_BUILD_TIMEOUT); output above." >&2; exit 125
  elif [ "$rc" != 0 ]; then
    echo "run-pair.sh: building the box failed (output above)." >&2; exit 125
  fi
fi
mkdir -p "$CACHE_DIR/logs"
CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
export CACHE_DIR

# ------------------------------------------------------------------------------ the run
RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
BOX2_LOG="$CACHE_DIR/logs/pair-$RUN_ID.box2"
# Keep the box-2 files of the last 40 pairs.
find "$CACHE_DIR/logs" -maxdepth 1 -name 'pair-*.box2' -printf '%T@ %p\n' | sort -rn | tail -n +41 |
  cut -d' ' -f2- | while read -r old; do rm -f "$old"; done

# The temporary directories of pairs whose run-pair.sh was killed (SIGKILL: no clean-up).
for old in "${TMPDIR:-/tmp}"/xenbox-pair.*.*; do
  [ -d "$old" ] || continue
  pid=${old##*/xenbox-pair.}; pid=${pid%%.*}
  [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$old"
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xenbox-pair.$$.XXXXXX") || { echo "run-pair.sh: mktemp failed" >&2; exit 125; }
mkdir "$TMP/xenbox-pair-ssh"
if ! ssh-keygen -q -t ed25519 -N '' -C "xenbox-pair-$RUN_ID" -f "$TMP/xenbox-pair-ssh/id_ed25519"; then
  echo "run-pair.sh: ssh-keygen failed" >&2; rm -rf "$TMP"; exit 125
fi
SHARED+=(--file "$TMP/xenbox-pair-ssh")

B1='' B2='' FOLLOW=''
# stop_box PID: stop a run.sh (it stops its QEMU on SIGTERM; SIGKILL takes the QEMU with it
# through its parent-death signal).
stop_box() {
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
}
# shellcheck disable=SC2317  # a trap handler
cleanup() {
  stop_box "$B1"; B1=''
  stop_box "$B2"; B2=''
  [ -z "$FOLLOW" ] || wait "$FOLLOW" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "run-pair.sh: interrupted; stopping both boxes." >&2; exit 130' INT TERM HUP

# caller_alive: is our parent still the process that started us? (As in run.sh: a caller killed
# by a test harness's timeout must not leave the boxes running.)
caller_alive() {
  local stat
  stat=$(< "/proc/$$/stat") || return 0
  stat=${stat##*) }
  read -r _ now _ <<< "$stat"
  [ "$now" = "$PPID" ]
}
orphaned() {
  echo "run-pair.sh: its caller (pid $PPID) went away; stopping both boxes." >&2
  exit 125
}

tcp_listening() {  # tcp_listening PORT: something listens on 127.0.0.1:PORT
  local hex; printf -v hex '0100007F:%04X' "$1"
  awk -v a="$hex" '$2 == a && $4 == "0A" {f = 1} END {exit !f}' /proc/net/tcp
}
port_used() {  # port_used PORT: a TCP socket of this host uses PORT locally
  local hex; printf -v hex ':%04X' "$1"
  awk -v p="$hex" 'NR > 1 && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' /proc/net/tcp /proc/net/tcp6
}
box2_booted() { grep -q 'toolstack-ready' "$BOX2_LOG" 2>/dev/null; }
box2_summary() {
  local serial
  serial=$(sed -n 's/.*; serial log \(.*\)$/\1/p' "$BOX2_LOG" 2>/dev/null | tail -n 1)
  echo "run-pair.sh: box 2: $1; its run.sh output: $BOX2_LOG; its serial log: ${serial:-unknown}" >&2
}

# Box 2, on a free port below the ephemeral range (another port if QEMU finds it taken after all).
PEER_TIMEOUT=$((TIMEOUT + 300))
for attempt in 1 2 3; do
  PORT=''
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 10000))
    port_used "$p" || { PORT=$p; break; }
  done
  [ -n "$PORT" ] || { echo "run-pair.sh: found no free TCP port in 20000-29999" >&2; exit 125; }
  say "booting box 2 (listening on 127.0.0.1:$PORT); its output: $BOX2_LOG"
  "$HERE/run.sh" --no-build "${SHARED[@]}" --timeout "$PEER_TIMEOUT" \
    --peer-link "listen:$PORT" --box-index 2 --env "XENBOX_PEER_WAIT_TIMEOUT=$((TIMEOUT + 120))" \
    "${PEER_OPTS[@]}" -- "$HERE/pair-peer.sh" > "$BOX2_LOG" 2>&1 &
  B2=$!
  if [ "$QUIET" = 0 ] && [ -z "$FOLLOW" ]; then
    tail -n +1 -s 0.3 -F --pid="$B2" "$BOX2_LOG" 2>/dev/null | sed -u 's/^/[box 2] /' >&2 &
    FOLLOW=$!
  fi
  deadline=$((SECONDS + 120))
  while ! tcp_listening "$PORT"; do
    if ! kill -0 "$B2" 2>/dev/null; then
      wait "$B2"; rc=$?; B2=''
      [ -z "$FOLLOW" ] || { wait "$FOLLOW" 2>/dev/null; FOLLOW=''; }
      if grep -qi 'address already in use' "$BOX2_LOG" && [ "$attempt" -lt 3 ]; then
        say "port $PORT was taken after all; another one"
        continue 2
      fi
      [ "$QUIET" = 0 ] || tail -n 80 "$BOX2_LOG" | sed 's/^/[box 2] /' >&2
      box2_summary "run.sh exited with status $rc before its QEMU listened"
      [ "$rc" = 2 ] && exit 2
      echo "run-pair.sh: box 2 failed to start." >&2
      exit 125
    fi
    caller_alive || orphaned
    if [ $SECONDS -ge "$deadline" ]; then
      stop_box "$B2"; B2=''
      box2_summary "its QEMU did not listen on 127.0.0.1:$PORT within 120 s; stopped"
      exit 125
    fi
    sleep 0.1
  done
  break
done
[ -n "$B2" ] || { echo "run-pair.sh: box 2 could not listen on a free port (3 tries)" >&2; exit 125; }
T_LISTEN=$SECONDS

# Box 1.
say "box 2's QEMU listens; booting box 1 (connecting to 127.0.0.1:$PORT)"
quiet=(); [ "$QUIET" = 1 ] && quiet=(--quiet)
"$HERE/run.sh" --no-build "${SHARED[@]}" "${quiet[@]}" --timeout "$TIMEOUT" \
  --peer-link "connect:$PORT" --box-index 1 -- "${PROGRAM[@]}" &
B1=$!

B2_FAILED='' B2_RC=''
while kill -0 "$B1" 2>/dev/null; do
  if [ -n "$B2" ] && ! kill -0 "$B2" 2>/dev/null; then
    wait "$B2"; B2_RC=$?; B2=''
    if ! box2_booted; then
      B2_FAILED=1
      echo "run-pair.sh: box 2 failed to boot (run.sh status $B2_RC): stopping box 1." >&2
      stop_box "$B1"; B1=''
      break
    fi
    say "box 2 ended (run.sh status $B2_RC) while box 1 runs"
  fi
  caller_alive || orphaned
  sleep 0.5
done
RC=125
if [ -n "$B1" ]; then wait "$B1"; RC=$?; B1=''; fi
say "box 1 ended with status $RC ($((SECONDS - T_LISTEN)) s after box 2 listened)"

# Box 2: give it time to power off when it saw peer-done, else stop it now.
if [ -n "$B2" ]; then
  deadline=$((SECONDS + 5))
  while kill -0 "$B2" 2>/dev/null && ! grep -q XENBOX-PEER-DONE "$BOX2_LOG" && [ $SECONDS -lt "$deadline" ]; do
    sleep 0.2
  done
  if grep -q XENBOX-PEER-DONE "$BOX2_LOG"; then
    deadline=$((SECONDS + 60))
    while kill -0 "$B2" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.2; done
  fi
  if kill -0 "$B2" 2>/dev/null; then
    say "stopping box 2"
    stop_box "$B2"; B2=''
    B2_RC=stopped
  else
    wait "$B2"; B2_RC=$?; B2=''
  fi
fi
[ -z "$FOLLOW" ] || { wait "$FOLLOW" 2>/dev/null; FOLLOW=''; }

[ "$B2_RC" = 0 ] || [ "$B2_RC" = stopped ] || box2_booted || B2_FAILED=1
if [ -n "$B2_FAILED" ]; then
  [ "$QUIET" = 0 ] || tail -n 80 "$BOX2_LOG" | sed 's/^/[box 2] /' >&2
  box2_summary "failed to boot (run.sh status $B2_RC)"
  exit 125
fi
case "$B2_RC" in
  0) what="powered off after peer-done" ;;
  stopped) what="stopped by run-pair.sh (its program never saw /run/xenbox/peer-done)" ;;
  *) what="run.sh exited with status $B2_RC" ;;
esac
if [ "$QUIET" = 0 ] || [ "$RC" != 0 ] || [ "$B2_RC" != 0 ]; then box2_summary "$what"; fi
exit "$RC"
