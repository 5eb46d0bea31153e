#!/bin/bash
# run.sh - run a program as root in dom0 of the Xen test box (Xen 4.17 + Debian bookworm dom0,
# booted under QEMU software emulation), or give a shell there.
#
# Usage:
#   tests/xen-box/run.sh [OPTIONS] -- PROGRAM [ARGS...]
#   tests/xen-box/run.sh --interactive [OPTIONS] [-- PROGRAM]
#
# Boots the box unattended, copies PROGRAM and every --file into a fresh share directory that dom0
# mounts at /mnt/host (9p), runs `PROGRAM ARGS...` there as root with /mnt/host as its working
# directory, copies its stdout+stderr (one stream, as it is written) to this script's stdout, powers
# the box off and exits with PROGRAM's exit status. A PROGRAM without a slash that is not a file
# here is a command of dom0 (e.g. `-- xl info`) and is not copied.
#
# Options:
#   --timeout SECONDS     hard wall-clock limit for the whole QEMU run (default 1200; for
#                         --interactive: none unless given). On expiry QEMU is killed: exit 124.
#   --boot-timeout SECONDS  limit for the box to boot and bring its toolstack up (default 300).
#   --file PATH           copy PATH (a file or directory) into the share too; repeatable.
#   --env NAME=VALUE      export NAME=VALUE to PROGRAM (and the interactive shell); repeatable.
#   --keep                keep the run's share directory (its path is printed).
#   --no-build            do not run build.sh first (by default it runs, within
#                         XENBOX_BUILD_TIMEOUT seconds, default 1800; it is a no-op when the box
#                         is up to date, and uses sudo when it must build and is not root).
#   --interactive, -i     a root shell in dom0 on this terminal instead of PROGRAM (PROGRAM and
#                         --file are only copied into the share). Leaving the shell powers off.
#                         Keys: Ctrl-A x quits QEMU; Ctrl-A c toggles QEMU's monitor; Xen's own
#                         console (3 x Ctrl-A to Xen) is reached with Ctrl-A a, three times.
#   --quiet, -q           no progress lines on stderr.
#   --box-index N         this box's number, 1 (the default) or 2: dom0 is fe80::N on xenbr0 and
#                         PROGRAM finds XENBOX_INDEX=N. For the two boxes of a pair.
#   --peer-link listen:PORT | connect:PORT
#                         a third e1000 (PCI 00:07.0, MAC 52:54:00:12:35:0N, N the box index) on a
#                         QEMU socket link to another box: listen on 127.0.0.1:PORT, or connect to
#                         it (the listening box's QEMU must be up first: QEMU 7.2 does not retry,
#                         a refused connection leaves the link dead, silently). dom0 puts that NIC
#                         into xenbr0 and, when the share holds a pair key (xenbox-pair-ssh/), runs
#                         sshd and waits for the peer's; see files/dom0-pair. run-pair.sh does all
#                         this.
#   --help, -h            this text.
#
# Exit status: PROGRAM's; 124 when --timeout expired; 125 when the box failed (build failed, QEMU
# would not start, Xen or dom0 did not boot, the toolstack did not come up, the box stopped
# before PROGRAM finished, or the caller of run.sh went away); 130 when interrupted; 2 for a
# usage error.
#
# In dom0 PROGRAM finds, besides its --env variables:
#   XENBOX_GUEST_KERNEL=/var/lib/xenbox/vmlinux        the test guest's kernel (uncompressed ELF)
#   XENBOX_GUEST_KERNEL_COMPRESSED=/var/lib/xenbox/vmlinuz
#   XENBOX_GUEST_RAMDISK=/var/lib/xenbox/domU-initrd.cpio.gz   the test guest (see files/guest-init)
#   XENBOX_CONSOLE_LOG_DIR=/var/log/xen/console        guest consoles: guest-<name>.log
#   XENBOX_BRIDGE=xenbr0                               bridge for guests' vifs (dom0: fe80::N)
#   XENBOX_INDEX=N                                     the box's --box-index (1 unless given)
#   XENBOX_SELF_ADDR=fe80::N                           dom0's address on xenbr0
#   XENBOX_PEER_ADDR=fe80::M                           with --peer-link: the other box's dom0
#                                                      (ssh/ping it as fe80::M%xenbr0)
#   XENBOX_PASSTHROUGH_NIC=0000:00:03.0                an e1000 free for PCI passthrough
#   XENBOX_DOM0_NIC=0000:00:02.0                       an e1000 that stays in dom0
#   XENBOX_VERSIONS=/var/lib/xenbox/versions.txt       package versions of the box
#   XENBOX=1
#
# The box: q35, TCG, -cpu max,-smap,-xsave,-xsaveopt,-avx,-avx2 (an XSAVE vCPU corrupts dom0
# userspace under TCG), 2 GiB, 2 vCPUs, emulated Intel IOMMU (Xen iommu=1), two e1000 NICs on
# isolated user-mode networks (a third one with --peer-link), dom0 with 1 GiB. The root disk is a snapshot: every run starts clean.
# Serial log of each run (lines stamped with seconds since QEMU started) and PROGRAM's output:
# $CACHE_DIR/logs/<run>.log and <run>.output, CACHE_DIR defaulting to <repo>/target/xen-box.
# On failure the last 60 lines of the serial log and its path go to stderr.
#
# Knobs (environment): CACHE_DIR; XENBOX_CPU, XENBOX_MEM (MiB), XENBOX_SMP, XENBOX_DOM0_MEM;
# XENBOX_XEN_EXTRA / XENBOX_DOM0_EXTRA (extra Xen / dom0 kernel command line);
# XENBOX_QEMU_EXTRA (extra QEMU arguments, split on spaces).
set -uo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE_DIR="${CACHE_DIR:-$REPO/target/xen-box}"
PASSTHROUGH_NIC=0000:00:03.0
DOM0_NIC=0000:00:02.0

BUILD_TIMEOUT="${XENBOX_BUILD_TIMEOUT:-1800}"
T0=$SECONDS
QUIET=0
say() { [ "$QUIET" = 1 ] || echo "[xen-box +$((SECONDS - T0))s] $*" >&2; }
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
usage_error() { echo "run.sh: $*" >&2; echo "Try 'run.sh --help'." >&2; exit 2; }

# ------------------------------------------------------------------------------ arguments
TIMEOUT='' BOOT_TIMEOUT=300 KEEP=0 BUILD=1 INTERACTIVE=0 INDEX=1 PEER_LINK=''
FILES=() ENVS=()
while [ $# -gt 0 ]; do
  opt=$1 val=''
  case "$opt" in
    --*=*) val=${opt#*=} opt=${opt%%=*} ;;
    --timeout|--boot-timeout|--file|--env|--box-index|--peer-link)
      [ $# -ge 2 ] || usage_error "$opt needs a value"
      val=$2; shift ;;
  esac
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    -i|--interactive) INTERACTIVE=1 ;;
    -q|--quiet) QUIET=1 ;;
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    --timeout) TIMEOUT=$val ;;
    --boot-timeout) BOOT_TIMEOUT=$val ;;
    --file) FILES+=("$val") ;;
    --env) ENVS+=("$val") ;;
    --box-index) INDEX=$val ;;
    --peer-link) PEER_LINK=$val ;;
    --) shift; break ;;
    -*) usage_error "unknown option $opt" ;;
    *) break ;;
  esac
  shift
done
PROGRAM=("$@")
for t in "$TIMEOUT" "$BOOT_TIMEOUT"; do
  [[ -z "$t" || "$t" =~ ^[1-9][0-9]*$ ]] || usage_error "timeouts are whole seconds > 0, not '$t'"
done
if [ "$INTERACTIVE" = 0 ]; then
  [ ${#PROGRAM[@]} -gt 0 ] || usage_error "no PROGRAM given (or use --interactive)"
  TIMEOUT=${TIMEOUT:-1200}
fi
for e in "${ENVS[@]}"; do
  [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env wants NAME=VALUE, not '$e'"
done
for f in "${FILES[@]}"; do [ -e "$f" ] || usage_error "--file $f: no such file"; done
[[ "$INDEX" =~ ^[12]$ ]] || usage_error "--box-index is 1 or 2, not '$INDEX'"
PEER_NETDEV=''
if [ -n "$PEER_LINK" ]; then
  [[ "$PEER_LINK" =~ ^(listen|connect):([1-9][0-9]*)$ ]] && [ "${BASH_REMATCH[2]}" -le 65535 ] ||
    usage_error "--peer-link wants listen:PORT or connect:PORT (PORT 1-65535), not '$PEER_LINK'"
  PEER_NETDEV="socket,id=peer,${BASH_REMATCH[1]}=127.0.0.1:${BASH_REMATCH[2]}"
fi

# ------------------------------------------------------------------------------ the box
if [ "$BUILD" = 1 ]; then
  # Bounded too: debootstrap and apt can hang on a stalled mirror. On a terminal the build may
  # ask for sudo's password, so it keeps the terminal (--foreground).
  fg=(); [ -t 0 ] && fg=(--foreground)
  CACHE_DIR="$CACHE_DIR" timeout "${fg[@]}" "$BUILD_TIMEOUT" bash "$HERE/build.sh" >&2
  rc=$?
  if [ "$rc" = 124 ]; then
    echo "run.sh: building the box took longer than $BUILD_TIMEOUT s (XENBOX_BUILD_TIMEOUT); output above." >&2; exit 125
  elif [ "$rc" != 0 ]; then
    echo "run.sh: building the box failed (output above)." >&2; exit 125
  fi
fi
mkdir -p "$CACHE_DIR"
CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
BOX="$CACHE_DIR/current"
for a in xen vmlinuz dom0-initrd.cpio.gz dom0.img; do
  [ -s "$BOX/$a" ] || { echo "run.sh: the box is not built ($BOX/$a missing): run tests/xen-box/build.sh as root." >&2; exit 125; }
done
BOX="$(cd "$BOX" && pwd -P)"
case "$BOX$CACHE_DIR" in
  *[,\ ]*) echo "run.sh: the cache path '$CACHE_DIR' must not contain commas or spaces (QEMU syntax)." >&2; exit 125 ;;
esac

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  QEMU=(qemu-system-x86_64)
elif [ -x "$CACHE_DIR/qemu/usr/bin/qemu-system-x86_64" ]; then
  # Debs unpacked by build.sh: firmware from the seabios package, no option ROMs needed (romfile=).
  QD="$CACHE_DIR/qemu"
  export QEMU_MODULE_DIR="$QD/usr/lib/x86_64-linux-gnu/qemu"
  QEMU=("$QD/usr/bin/qemu-system-x86_64" -L "$QD/usr/share/qemu" -L /usr/share/seabios)
else
  echo "run.sh: no qemu-system-x86_64: run tests/xen-box/build.sh as root." >&2; exit 125
fi

# ------------------------------------------------------------------------------ the run
RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
RUN_DIR="$CACHE_DIR/runs/$RUN_ID"
SHARE="$RUN_DIR/share"
CTL="$SHARE/.xenbox"
LOG="$CACHE_DIR/logs/$RUN_ID.log"
OUT_COPY="$CACHE_DIR/logs/$RUN_ID.output"
mkdir -p "$CTL" "$CACHE_DIR/logs"
# Share directories of runs that were killed (not kept with --keep, their run.sh is gone).
for old in "$CACHE_DIR"/runs/*-*; do
  [ "$old" != "$RUN_DIR" ] && [ ! -e "$old/kept" ] && ! kill -0 "${old##*-}" 2>/dev/null &&
    rm -rf "$old"
done
# Keep the logs of the last 40 runs.
ls -1t "$CACHE_DIR"/logs/*.log 2>/dev/null | tail -n +41 | while read -r old; do
  rm -f "$old" "${old%.log}.output"
done

copy_in() {  # copy_in PATH: into the share under its base name
  local name; name=$(basename "$1")
  [ ! -e "$SHARE/$name" ] || usage_error "two files named '$name' for the share"
  cp -RL "$1" "$SHARE/$name" || usage_error "cannot copy $1"
}
if [ ${#PROGRAM[@]} -gt 0 ]; then
  if [[ "${PROGRAM[0]}" == */* ]] || [ -f "${PROGRAM[0]}" ]; then
    [ -f "${PROGRAM[0]}" ] || usage_error "PROGRAM ${PROGRAM[0]}: no such file"
    copy_in "${PROGRAM[0]}"
    chmod u+x "$SHARE/$(basename "${PROGRAM[0]}")"
    PROGRAM[0]="./$(basename "${PROGRAM[0]}")"
  fi
fi
for f in "${FILES[@]}"; do copy_in "$f"; done

{
  echo "# written by run.sh: sourced in dom0 before PROGRAM and by root's shell"
  echo "export XENBOX_PASSTHROUGH_NIC=$PASSTHROUGH_NIC XENBOX_DOM0_NIC=$DOM0_NIC"
  echo "export XENBOX_INDEX=$INDEX XENBOX_SELF_ADDR=fe80::$INDEX"
  [ -z "$PEER_LINK" ] || echo "export XENBOX_PEER_ADDR=fe80::$((3 - INDEX))"
  for e in "${ENVS[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
} > "$CTL/env"
if [ ${#PROGRAM[@]} -gt 0 ] && [ "$INTERACTIVE" = 0 ]; then
  { echo "# written by run.sh: what dom0 runs (cwd /mnt/host)"
    printf 'exec'; printf ' %q' "${PROGRAM[@]}"; echo; } > "$CTL/job.sh"
fi

CPU="${XENBOX_CPU:-max,-smap,-xsave,-xsaveopt,-avx,-avx2,-rdtscp}"
TCG_THREAD="${XENBOX_TCG_THREAD:-multi}"
MEM="${XENBOX_MEM:-2048}"
SMP="${XENBOX_SMP:-2}"
DOM0_MEM="${XENBOX_DOM0_MEM:-1024M}"
MODE=job; [ "$INTERACTIVE" = 1 ] && MODE=interactive
XEN_CMDLINE="dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=$SMP bootscrub=0 iommu=1 console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all conring_size=1M ${XENBOX_XEN_EXTRA:-}"
DOM0_CMDLINE="console=hvc0 earlyprintk=xen xenbox.mode=$MODE xenbox.index=$INDEX ${XENBOX_DOM0_EXTRA:-}"
# shellcheck disable=SC2054  # commas separate QEMU's sub-options
QEMU_ARGS=(
  -machine q35 -accel "tcg,thread=$TCG_THREAD,tb-size=256" -cpu "$CPU" -m "$MEM" -smp "$SMP"
  -no-reboot -nodefaults -no-user-config -display none
  -device intel-iommu,intremap=on
  # Multiboot: Xen is the kernel; the modules (comma separated) are dom0's kernel and initramfs.
  -kernel "$BOX/xen" -append "$XEN_CMDLINE"
  -initrd "$BOX/vmlinuz $DOM0_CMDLINE,$BOX/dom0-initrd.cpio.gz"
  -drive "id=root,if=none,file=$BOX/dom0.img,format=raw,cache=unsafe,snapshot=on"
  -device virtio-blk-pci,drive=root,addr=0x4
  -fsdev "local,id=share,path=$SHARE,security_model=none"
  -device virtio-9p-pci,fsdev=share,mount_tag=host0,addr=0x5
  -netdev user,id=net0,restrict=on -device e1000,netdev=net0,addr=0x2,mac=52:54:00:12:34:02,romfile=
  -netdev user,id=net1,restrict=on -device e1000,netdev=net1,addr=0x3,mac=52:54:00:12:34:03,romfile=
  # A USB device for the USB adapter tests to pass through.
  -device qemu-xhci,id=xhci,addr=0x6 -device usb-tablet,bus=xhci.0,serial=xenbox-dom0-tablet
)
# The peer link: a point-to-point Ethernet over TCP to the other box's QEMU (files/dom0-pair).
# shellcheck disable=SC2054
[ -z "$PEER_NETDEV" ] || QEMU_ARGS+=(
  -netdev "$PEER_NETDEV" -device "e1000,netdev=peer,addr=0x7,mac=52:54:00:12:35:0$INDEX,romfile="
)
# shellcheck disable=SC2206
[ -n "${XENBOX_QEMU_EXTRA:-}" ] && QEMU_ARGS+=($XENBOX_QEMU_EXTRA)

{
  echo "run.sh: run $RUN_ID, box $BOX"
  echo "run.sh: $("${QEMU[0]}" --version | head -n 1)"
  echo "run.sh: xen: $XEN_CMDLINE"
  echo "run.sh: dom0: $DOM0_CMDLINE"
  [ -f "$CTL/job.sh" ] && echo "run.sh: job: $(tail -n 1 "$CTL/job.sh")"
  echo "run.sh: cmd: $(printf '%q ' "${QEMU[@]}" "${QEMU_ARGS[@]}")"
} > "$LOG"

QEMU_PID='' STAMP_PID='' STREAM_PID=''
stop_qemu() {
  [ -n "$QEMU_PID" ] || return 0
  if kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -TERM "$QEMU_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$QEMU_PID" 2>/dev/null
  fi
  wait "$QEMU_PID" 2>/dev/null
  QEMU_PID=''
}
cleanup() {
  stop_qemu
  [ -z "$STREAM_PID" ] || kill "$STREAM_PID" 2>/dev/null
  [ -z "$STAMP_PID" ] || kill "$STAMP_PID" 2>/dev/null
  wait 2>/dev/null
  if [ "$KEEP" = 1 ]; then touch "$RUN_DIR/kept"; echo "run.sh: share directory kept: $SHARE" >&2
  else rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted; stopping QEMU." >&2; exit 130' INT TERM HUP
serial_tail() {
  echo "---- last 60 lines of the serial log ----" >&2
  tail -n 60 "$LOG" >&2
  echo "---- whole serial log: $LOG" >&2
}

# ------------------------------------------------------------------------------ interactive
if [ "$INTERACTIVE" = 1 ]; then
  size=$(stty size 2>/dev/null < /dev/tty) || size="24 80"
  echo "$size" > "$CTL/interactive"
  say "booting the box (about 15 s); the share is $SHARE, /mnt/host in dom0"
  say "Ctrl-A x quits QEMU; leaving the shell powers the box off. Serial log: $LOG"
  limit=(); [ -n "$TIMEOUT" ] && limit=(timeout --foreground -k 5 "$TIMEOUT")
  "${limit[@]}" setpriv --pdeathsig KILL -- "${QEMU[@]}" "${QEMU_ARGS[@]}" \
    -chardev "stdio,id=con,mux=on,signal=off,logfile=$LOG,logappend=on" \
    -serial chardev:con -mon chardev=con,mode=readline
  rc=$?
  [ "$rc" = 124 ] && { echo "run.sh: --timeout $TIMEOUT s expired; QEMU was killed." >&2; exit 124; }
  exit "$rc"
fi

# ------------------------------------------------------------------------------ unattended
# Serial output -> log, each line stamped with the seconds since QEMU started; the box's progress
# marks (XENBOX-MARK) also go to stderr.
stamp() {
  local start=${EPOCHREALTIME/./} line d ts
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    d=$(( ${EPOCHREALTIME/./} - start ))
    printf -v ts '[%4d.%03d]' $((d / 1000000)) $(((d / 1000) % 1000))
    printf '%s %s\n' "$ts" "$line"
    if [ "$QUIET" = 0 ] && [[ "$line" == *XENBOX-MARK* ]]; then
      echo "[xen-box +$((SECONDS - T0))s] ${line#*XENBOX-MARK }" >&2
    fi
  done
}
# PROGRAM's output file -> stdout while it grows; after the stop file appears (or if this script
# was killed), one last read.
stream() {
  local file=$1 stop=$2 off=0 size last
  while :; do
    last=0; { [ -e "$stop" ] || ! kill -0 $$ 2>/dev/null; } && last=1
    size=$(stat -c %s "$file" 2>/dev/null || echo 0)
    if [ "$size" -gt "$off" ]; then
      tail -c +$((off + 1)) "$file" | head -c $((size - off))
      off=$size
    fi
    [ $last = 1 ] && break
    sleep 0.3
  done
}

# caller_alive: is our parent still the process that started us? (Not `kill -0 $PPID`: that
# fails with EPERM for a parent of another user, e.g. `sudo -u someone run.sh`.)
caller_alive() {
  local stat
  stat=$(< "/proc/$$/stat") || return 0
  stat=${stat##*) }                  # after "pid (comm) ": state ppid ...
  read -r _ now _ <<< "$stat"
  [ "$now" = "$PPID" ]
}

mkfifo "$RUN_DIR/serial"
stamp < "$RUN_DIR/serial" >> "$LOG" &
STAMP_PID=$!
say "booting the box ($(basename "$BOX")); serial log $LOG"
# pdeathsig: QEMU dies with this script even if it is killed with SIGKILL.
setpriv --pdeathsig KILL -- "${QEMU[@]}" "${QEMU_ARGS[@]}" -serial stdio -monitor none \
  < /dev/null > "$RUN_DIR/serial" 2>&1 &
QEMU_PID=$!
stream "$CTL/output" "$RUN_DIR/stream-stop" &
STREAM_PID=$!

START=$SECONDS failure=''
while kill -0 "$QEMU_PID" 2>/dev/null; do
  if [ $((SECONDS - START)) -ge "$TIMEOUT" ]; then
    failure=timeout; break
  fi
  if [ ! -e "$CTL/toolstack" ] && [ $((SECONDS - START)) -ge "$BOOT_TIMEOUT" ]; then
    failure=boot-timeout; break
  fi
  # A caller that was killed (a test harness's timeout) must not leave the box running.
  if ! caller_alive; then
    failure=orphaned; break
  fi
  sleep 0.2
done
stop_qemu
touch "$RUN_DIR/stream-stop"
wait "$STREAM_PID"; STREAM_PID=''
wait "$STAMP_PID"; STAMP_PID=''
[ -f "$CTL/output" ] && cp "$CTL/output" "$OUT_COPY"

if [ "$failure" = timeout ]; then
  serial_tail
  echo "run.sh: --timeout $TIMEOUT s expired: QEMU was killed$( [ -f "$CTL/rc" ] || echo " before PROGRAM finished")." >&2
  exit 124
fi
if [ -f "$CTL/rc" ]; then
  rc=$(cat "$CTL/rc")
  [[ "$rc" =~ ^[0-9]+$ ]] || rc=125
  say "PROGRAM exited with status $rc (box up $((SECONDS - START)) s)"
  if [ "$rc" != 0 ]; then
    serial_tail
    echo "run.sh: PROGRAM exited with status $rc (its output: $(stat -c %s "$CTL/output" 2>/dev/null || echo 0) bytes on stdout, copy in $OUT_COPY)." >&2
  fi
  exit "$rc"
fi
serial_tail
if [ "$failure" = orphaned ]; then
  echo "run.sh: its caller (pid $PPID) went away; the box was stopped." >&2
elif [ "$failure" = boot-timeout ]; then
  echo "run.sh: the box did not boot to a running toolstack within $BOOT_TIMEOUT s (QEMU killed)." >&2
elif [ ! -e "$CTL/booted" ]; then
  echo "run.sh: the box did not boot: dom0 never reached its init with the share mounted." >&2
elif [ "$(cat "$CTL/toolstack" 2>/dev/null)" != ok ]; then
  echo "run.sh: the Xen toolstack did not come up in dom0 ($(cat "$CTL/toolstack" 2>/dev/null || echo 'no report'))." >&2
else
  echo "run.sh: the box stopped before PROGRAM finished (no exit status reported)." >&2
fi
exit 125
