#!/bin/bash
# fuzz.sh - run the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer), one process per CPU at a
# time (FUZZ_JOBS overrides), and print a table: target, executions, crashes, seconds, exec/s.
#
#   scripts/fuzz.sh [--dev] [--seconds N | --runs N] [TARGET...]   (default: 30 s each, every target)
#
# The build is cargo-fuzz's default (optimized, debug assertions, AddressSanitizer); --dev builds
# without optimization instead: the same checks and sanitizer, about three times quicker to build
# and several times fewer executions a second (CI's short runs use it; see BENCHMARKS.md).
# Every target runs with -timeout=10 (an input taking longer is a crash) and -rss_limit_mb=2048.
# Each starts from its seeds: the repository's fixtures (tests/xlcfg/*.cfg,
# packaging/default/domainmgr), the hand-written files in fuzz/seeds/<target>/, and a save
# image header made here; plus whatever corpus earlier runs grew in fuzz/corpus/<target>/
# (not in git). A crash stops its target and leaves the input in fuzz/artifacts/<target>/;
# the script then exits 1. Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh

toolchain=${FUZZ_TOOLCHAIN:-nightly}
limit=(-max_total_time=30)
profile=release
targets=()
while (($#)); do
  case $1 in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    --dev) profile=debug; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=$(cd fuzz && cargo "+$toolchain" fuzz list)
((${#targets[@]})) || mapfile -t targets <<<"$all"
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$all" || { echo "fuzz.sh: no target $t (targets: $(echo $all))" >&2; exit 2; }
done

# One build for all targets, with debug assertions and AddressSanitizer (cargo-fuzz's defaults).
if [ "$profile" = debug ]; then
  (cd fuzz && cargo "+$toolchain" fuzz build --dev)
else
  (cd fuzz && cargo "+$toolchain" fuzz build)
fi
bin_dir=fuzz/target/$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')/$profile

# Seeds generated from the repository, into the (untracked) corpus directories.
seed() { mkdir -p "fuzz/corpus/$1"; cp "${@:2}" "fuzz/corpus/$1/"; }
seed xl_cfg tests/xlcfg/*.cfg
seed host_config packaging/default/domainmgr
save_seed() { # a save image header (native byte order, as xl writes it) carrying $1
  local json=$1 len=$((${#1} + 1))
  le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
  printf 'Xen saved domain, xl format\n \0 \r'
  le32 $((0x01020304)); le32 3; le32 0; le32 $((len + 4)); le32 "$len"
  printf '%s\0' "$json"
  printf 'libxl stream'
}
mkdir -p fuzz/corpus/save_header
save_seed '{"c_info":{"type":"pv","name":"web"},"b_info":{"max_memkb":131072}}' >fuzz/corpus/save_header/pv
save_seed '' >fuzz/corpus/save_header/empty-config
# xl.cfg words: every key xenctl classifies, and the device specs' words.
dict=fuzz/corpus/xl_cfg.dict
{
  grep -o '"[a-z_0-9]*"' xenctl/src/xlkeys.rs | sort -u
  for w in '=' '+=' '[' ']' "'" ',' ';' '#' '\\x' '\\0' 'format=' 'vdev=' 'access=' 'target=' \
    '\x00' 'devtype=cdrom' 'backendtype=' 'script=' 'backend=' 'discard' 'no-discard' 'direct-io-safe' \
    'bridge=' 'mac=' 'vifname=' 'rate=' 'model=' 'ip=' 'mtu=' 'gatewaydev=' 'devid=' 'trusted' \
    'vnc=' 'vnclisten=' 'vncdisplay=' 'vncpasswd=' 'vncunused=' 'keymap=' 'sdl=' 'opengl=' \
    'permissive=' 'seize=' 'msitranslate=' 'power_mgmt=' '0000:03:00.0' 'qcow2' 'hvm' 'pvh'; do
    printf '"%s"\n' "$w"
  done
} >"$dict"

declare -A flags=([xl_cfg]="-dict=$dict")
# libxlutil's one known leak (on files that fail to parse) is suppressed; see the file.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# One target's run; its row ("target executions crashes seconds") goes to its .row file.
run_target() {
  local t=$1 seeds=() log before start status=0 secs execs crashes
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  log=fuzz/artifacts/$t/last-run.log
  before=$(find "fuzz/artifacts/$t" -type f ! -name '*.log' ! -name '*.row' | wc -l)
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # flags holds zero or one word
  "$bin_dir/$t" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${limit[@]}" \
    -artifact_prefix="fuzz/artifacts/$t/" ${flags[$t]:-} "fuzz/corpus/$t" "${seeds[@]}" \
    >"$log" 2>&1 || status=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(($(find "fuzz/artifacts/$t" -type f ! -name '*.log' ! -name '*.row' | wc -l) - before))
  if ((status != 0)) && ((crashes == 0)); then crashes=1; fi # died without saving an input
  if ((crashes)); then
    grep -E '^(==[0-9]+==|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -20 || true
    echo "fuzz.sh: $t: crash; log in $log"
  fi
  echo "$t ${execs:-0} $crashes $secs" >"fuzz/artifacts/$t/last-run.row"
}

# Each run is one single-threaded process: FUZZ_JOBS of them at a time (default: one per CPU).
parallel=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  echo "=== fuzz $t (${limit[*]})"
  rm -f "fuzz/artifacts/$t/last-run.row"
  run_target "$t" &
done
wait
rows=()
failed=0
for t in "${targets[@]}"; do
  row=$(cat "fuzz/artifacts/$t/last-run.row" 2>/dev/null) || row="$t 0 1 0"
  read -r _ _ crashes _ <<<"$row"
  ((crashes == 0)) || failed=1
  rows+=("$row")
done

printf '\n%-16s %12s %8s %9s %9s\n' target executions crashes seconds 'exec/s'
for r in "${rows[@]}"; do
  read -r t execs crashes secs <<<"$r"
  printf '%-16s %12s %8s %9s %9s\n' "$t" "$execs" "$crashes" "$secs" "$(awk -v n="$execs" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", n / s; else printf "-" }')"
done
exit "$failed"
