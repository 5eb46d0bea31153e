#!/bin/bash
# package.sh - build the Debian package of domainmgrd into target/debian/ and check it.
# (target/ is cargo's target directory: $CARGO_TARGET_DIR when set.)
#
# Builds the release binaries, their man pages (help2man, from --help) and the .deb
# (cargo-deb, per [package.metadata.deb] in domainmgrd/Cargo.toml, with a -dbgsym .ddeb for the
# debug info). Then checks: every asset at its path, the control fields, the maintainer scripts
# (they must never start or stop domainmgr-host.service, whose start boots and whose stop shuts
# down every domain), `systemd-analyze verify` of the units inside the extracted package, the
# man pages render, the shipped /etc/default/domainmgr only holds known keys with valid values,
# and lintian (reported, never fatal). Installs nothing on this machine; needs what
# scripts/setup.sh installs. Exits non-zero naming the first check that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh

fail() {
  printf 'package: FAILED: %s\n' "$*" >&2
  exit 1
}
note() { printf 'package: %s\n' "$*"; }
start=$(date +%s)
warnings=()

for tool in help2man dpkg-deb systemd-analyze groff; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/setup.sh"
done
cargo deb --version >/dev/null 2>&1 || fail "cargo-deb is missing: run scripts/setup.sh"

note "building the release binaries"
cargo build --release --locked -p domainmgrd --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin_dir=$target_dir/release out_dir=$target_dir/debian
for bin in domainmgrd domainctl domainmgrd-xlparse; do
  [ -x "$bin_dir/$bin" ] || fail "no $bin in $bin_dir"
done

# Man pages, dated by the last commit so that a rebuild gives the same bytes.
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
version=$("$bin_dir/domainmgrd" --version | awk '{print $2}')
man_dir=$bin_dir/man
mkdir -p "$man_dir"

# help2man include text: each domainctl command's own --help as a subsection (help2man itself
# only shows the top-level one). The options every command shares are left to OPTIONS.
command_help() {
  local title=$1
  shift
  printf '.SS "%s"\n' "$title"
  "$bin_dir/domainctl" "$@" -h | awk '
    function roff(s) {
      gsub(/\\/, "\\e", s)
      gsub(/-/, "\\-", s)
      if (s ~ /^[.\047]/) s = "\\&" s
      return s
    }
    /^(Arguments|Options|Commands):$/ { list = 1; next }
    /^Usage: / { print ".PP\nUsage: " roff(substr($0, 8)); next }
    /^$/ { next }
    list && /^ +(--socket|--json|-h, --help|help) / { next }
    list {
      sub(/^ +/, "")
      n = index($0, "  ")
      if (n == 0) { print roff($0); next }
      text = substr($0, n)
      sub(/^ +/, "", text)
      print ".TP\n\\fB" roff(substr($0, 1, n - 1)) "\\fR\n" roff(text)
      next
    }
    { print ".PP\n" roff($0) }
  '
}
domainctl_include=$man_dir/domainctl.h2m
{
  cat packaging/man/domainctl.h2m
  cat <<'EOF'

[COMMANDS]
Each command as its own \-\-help shows it; every command also takes \-\-socket and \-\-json.
EOF
  for cmd in $("$bin_dir/domainctl" --help | awk '/^Commands:$/ { f = 1; next } f && /^$/ { exit } f { print $1 }'); do
    [ "$cmd" = help ] && continue
    command_help "domainctl $cmd" "$cmd"
    if [ "$cmd" = pci ]; then
      for sub in list assign release; do command_help "domainctl pci $sub" pci "$sub"; done
    fi
  done
} >"$domainctl_include"

note "making the man pages (help2man)"
help2man --no-info --section=8 --include=packaging/man/domainmgrd.h2m \
  --version-string="domainmgrd $version" "$bin_dir/domainmgrd" -o "$man_dir/domainmgrd.8" ||
  fail "help2man domainmgrd"
help2man --no-info --section=8 --include="$domainctl_include" \
  --version-string="domainctl $version" "$bin_dir/domainctl" -o "$man_dir/domainctl.8" ||
  fail "help2man domainctl"
for page in domainmgrd domainctl; do
  complaints=$(groff -man -Tutf8 -ww -z "$man_dir/$page.8" 2>&1) || fail "groff cannot render $page.8"
  [ -z "$complaints" ] || fail "groff warns about $page.8: $complaints"
  lines=$(MANWIDTH=80 man -l "$man_dir/$page.8" 2>/dev/null | wc -l)
  [ "$lines" -gt 30 ] || fail "$page.8 renders to only $lines lines"
  gzip -9nf "$man_dir/$page.8"
done

note "building the package (cargo-deb)"
rm -f "$out_dir"/domainmgrd_*.deb "$out_dir"/domainmgrd-dbgsym_*.ddeb
cargo deb -p domainmgrd --no-build --locked --dbgsym >/dev/null || fail "cargo deb"
deb=$(ls "$out_dir"/domainmgrd_*.deb) || fail "cargo deb made no $out_dir/domainmgrd_*.deb"
ls "$out_dir"/domainmgrd-dbgsym_*.ddeb >/dev/null || fail "cargo deb made no -dbgsym .ddeb"

note "checking $deb"
contents=$(dpkg-deb -c "$deb") || fail "dpkg-deb -c: not a valid package"
for spec in \
  '-rwxr-xr-x ./usr/sbin/domainmgrd' \
  '-rwxr-xr-x ./usr/sbin/domainctl' \
  '-rwxr-xr-x ./usr/libexec/domainmgrd/domainmgrd-xlparse' \
  '-rwxr-xr-x ./usr/libexec/domainmgrd/native-hotplug' \
  '-rw-r--r-- ./lib/systemd/system/domainmgrd.service' \
  '-rw-r--r-- ./lib/systemd/system/domainmgr-host.service' \
  '-rw-r--r-- ./etc/default/domainmgr' \
  '-rw-r--r-- ./usr/share/man/man8/domainmgrd.8.gz' \
  '-rw-r--r-- ./usr/share/man/man8/domainctl.8.gz' \
  '-rw-r--r-- ./usr/share/doc/domainmgrd/README.md' \
  '-rw-r--r-- ./usr/share/doc/domainmgrd/copyright' \
  '-rw-r--r-- ./usr/share/doc/domainmgrd/changelog.Debian.gz'; do
  mode=${spec%% *} path=${spec#* }
  awk -v m="$mode" -v p="$path" '$1 == m && $2 ~ /^(0|root)\/(0|root)$/ && $6 == p { found = 1 } END { exit !found }' \
    <<<"$contents" || fail "the package lacks $path (owned by root, $mode)"
done

dpkg-deb -I "$deb" >/dev/null || fail "dpkg-deb -I: no valid control data"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = domainmgrd ] || fail "Package is not domainmgrd"
[ "$(field Section)" = admin ] || fail "Section is not admin"
[ "$(field Priority)" = optional ] || fail "Priority is not optional"
# The synopsis is domainmgrd's [package] description; cargo-deb wraps one over 79 characters,
# its tail landing in the extended description.
synopsis=$(awk -F'"' '/^description = / { print $2; exit }' domainmgrd/Cargo.toml)
if [ "${#synopsis}" -gt 79 ]; then
  warnings+=("the [package] description of domainmgrd is ${#synopsis} characters; the Debian synopsis wants < 80")
fi
changelog_version=$(sed -n '1s/^domainmgrd (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$changelog_version" = "$(field Version)" ] ||
  fail "packaging/debian/changelog starts at $changelog_version, the package is $(field Version): add an entry"
depends=$(field Depends)
for dep in libxenmisc4.17 libc6 xen-utils-4.17 xen-utils-common; do
  grep -qE "(^|, )$dep( |,|$)" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
grep -qx '/etc/default/domainmgr' <<<"$(dpkg-deb --info "$deb" conffiles)" ||
  fail "/etc/default/domainmgr is not a conffile"

# The maintainer scripts, run for real with logging stand-ins for deb-systemd-helper,
# deb-systemd-invoke, systemctl and domainctl (and /run/systemd/system, /var/lib/domainmgrd moved
# under $work), through install, upgrade, remove and purge: domainmgrd.service is started on
# install, restarted on upgrade and stopped on removal; domainmgr-host.service is never
# started, restarted or stopped, is enabled only if it was before, and nothing runs domainctl.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -e "$deb" "$work/DEBIAN"
stubs=$work/stubs log=$work/calls
mkdir -p "$stubs" "$work/run-systemd"
for stub in deb-systemd-helper deb-systemd-invoke systemctl domainctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$stub" "$log" >"$stubs/$stub"
done
# debian-installed: STUB_KNOWN (0 = the package was installed before); was-enabled: true.
# shellcheck disable=SC2016 # expanded by the stand-in
printf 'case "$*" in *debian-installed*) exit "${STUB_KNOWN:-1}" ;; esac\n' >>"$stubs/deb-systemd-helper"
chmod +x "$stubs"/*
for script in postinst prerm postrm; do
  [ -x "$work/DEBIAN/$script" ] || fail "the package has no executable $script"
  sh -n "$work/DEBIAN/$script" || fail "$script is not valid sh"
  sed -e "s#/run/systemd/system#$work/run-systemd#g" -e "s#/var/lib/domainmgrd#$work/state#g" \
    "$work/DEBIAN/$script" >"$stubs/$script.sh"
done
run_scripts() { # expected-invoke-calls, then steps "script args..."
  local expected=$1 step
  shift
  : >"$log"
  for step in "$@"; do
    # shellcheck disable=SC2086 # the step is a script name and its arguments
    PATH=$stubs:$PATH sh $stubs/$step || fail "maintainer script $step exited non-zero"
  done
  if grep -E 'domainmgr-host.*(start|stop)|(invoke|systemctl|domainctl) .*domainmgr-host|^domainctl' "$log"; then
    fail "maintainer scripts ($*) act on domainmgr-host.service (calls above)"
  fi
  [ "$(grep -E '^(deb-systemd-invoke|systemctl)' "$log" | grep -v 'daemon-reload$' | paste -sd';')" = "$expected" ] ||
    fail "maintainer scripts ($*): expected [$expected], got: $(paste -sd';' "$log")"
}
run_scripts "deb-systemd-invoke start domainmgrd.service" "postinst.sh configure"
grep -q 'enable domainmgrd.service' "$log" || fail "postinst does not enable domainmgrd.service on install"
! grep -q 'enable domainmgr-host.service' "$log" || fail "postinst enables domainmgr-host.service on install"
STUB_KNOWN=0 run_scripts "deb-systemd-invoke restart domainmgrd.service" \
  "prerm.sh upgrade $version" "postrm.sh upgrade $version" "postinst.sh configure $version"
grep -q 'enable domainmgr-host.service' "$log" || fail "postinst drops an enabled domainmgr-host.service on upgrade"
run_scripts "deb-systemd-invoke stop domainmgrd.service" "prerm.sh remove" "postrm.sh remove"
run_scripts "" "postrm.sh purge"

# systemd-analyze verify inside a root made of the extracted package, a copy of this machine's
# own units and the programs the units run: once with a stand-in for xen.service (the unit
# systemd's SysV generator makes of xen-utils-common's /etc/init.d/xen on a Debian dom0), once
# without it (upstream Xen's own units, which have no xen.service). The units may want Xen's
# units but require none: a Requires= on a unit that does not exist fails the unit.
root=$work/root
dpkg-deb -x "$deb" "$root" || fail "dpkg-deb -x"
mkdir -p "$root/usr/lib/systemd/system" "$root/usr/bin" "$root/etc/systemd/system"
cp -RP /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
for program in grep timeout sh true; do cp "$(type -P "$program")" "$root/usr/bin/"; done
[ -e "$root/bin" ] || ln -s usr/bin "$root/bin"
units=$root/lib/systemd/system
if grep -nE '^(Requires|Requisite|BindsTo)=' "$units/domainmgrd.service" "$units/domainmgr-host.service"; then
  fail "the units above hard-depend on other units; use Wants= and After="
fi
for xen_service in with without; do
  rm -f "$root/etc/systemd/system/xen.service"
  if [ $xen_service = with ]; then
    printf '[Unit]\nDescription=stand-in for the SysV xen.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n' \
      >"$root/etc/systemd/system/xen.service"
  fi
  verify=$(MANPATH=$root/usr/share/man systemd-analyze verify --root="$root" \
    domainmgrd.service domainmgr-host.service 2>&1) || fail "systemd-analyze verify ($xen_service xen.service): $verify"
  [ -z "$verify" ] || fail "systemd-analyze verify ($xen_service xen.service) complains: $verify"
done

# host-stop ends within STOP_MAXWAIT plus the destroys; domainmgr-host.service's stop timeout
# is fixed, so it must leave that margin over the shipped default (and stay under the 30 min
# systemd gives the whole poweroff).
timeout_stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$units/domainmgr-host.service")
maxwait=$(sed -n 's/^#STOP_MAXWAIT=\([0-9]*\)$/\1/p' "$root/etc/default/domainmgr")
[ -n "$timeout_stop" ] && [ -n "$maxwait" ] || fail "no TimeoutStopSec (seconds) in domainmgr-host.service or no STOP_MAXWAIT default"
[ "$timeout_stop" -ge $((maxwait + 120)) ] && [ "$timeout_stop" -lt 1800 ] ||
  fail "TimeoutStopSec=$timeout_stop must be at least STOP_MAXWAIT ($maxwait) + 120 s and under 30 min"

# The shipped /etc/default/domainmgr: nothing is set (every line a comment or blank), and with
# every `#KEY=value` line uncommented it still holds only known keys with values of the right
# kind. The parser itself is HostConfig::parse (domainmgrd/src/hostcfg.rs).
default=$root/etc/default/domainmgr
if grep -vnE '^[[:space:]]*(#.*)?$' "$default"; then
  fail "/etc/default/domainmgr sets something (lines above); ship every setting commented out"
fi
settings=$(sed -n 's/^#\([A-Z_]*\)=\(.*\)$/\1 \2/p' "$default")
[ "$(wc -l <<<"$settings")" -eq 10 ] || fail "/etc/default/domainmgr does not show all 10 settings"
while read -r key value; do
  value=${value#\"} value=${value%\"}
  case $key in
  RESTORE | AUTO_ONLY | SHUTDOWN_ALL | DESTROY_LEFT) [[ $value =~ ^(true|false)$ ]] ;;
  STOP_MAXWAIT | START_PARALLEL) [[ $value =~ ^[1-9][0-9]*$ ]] ;;
  AUTO) [[ $value == /* ]] ;;
  SAVE | SYSRQ | MIGRATE) [ -z "$value" ] ;;
  *) false ;;
  esac || fail "/etc/default/domainmgr: $key=$value is not a valid default"
done <<<"$settings"
bash -n "$default" || fail "/etc/default/domainmgr is not valid shell"

if command -v lintian >/dev/null; then
  note "lintian (informational)"
  lintian --tag-display-limit 0 "$deb" || true
else
  note "lintian is not installed; skipped"
fi

printf '\npackage: %s (%s KiB), built and checked in %ss\n' "$deb" "$(($(stat -c %s "$deb") / 1024))" "$(($(date +%s) - start))"
printf 'package: Depends: %s\n' "$depends"
for w in "${warnings[@]}"; do printf 'package: WARNING: %s\n' "$w"; done
printf 'package: files:\n'
awk '$1 !~ /^d/ { print "  " $6 }' <<<"$contents"
