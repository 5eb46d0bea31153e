#!/bin/bash
# setup.sh - install what building and testing this project needs on Debian 12 (bookworm).
#
# System packages: the Xen 4.17 libraries we link (libxen-dev), libclang for bindgen,
# pkg-config and a C compiler; qemu-utils, whose qemu-img tells an EVE app's image formats
# (and makes images in tests). A Rust toolchain (>= 1.89, edition 2024) via rustup if cargo
# is missing or too old (Debian 12's own rustc is 1.63). The Xen test box installs its own
# extra packages (QEMU, debootstrap...) when it is first built (tests/xen-box/build.sh).
# For the Debian package (scripts/package.sh): cargo-deb (built from crates.io into
# $CARGO_HOME/bin, beside cargo), help2man for the man pages, dpkg-dev (dpkg-shlibdeps),
# systemd (systemd-analyze verify), man-db and lintian for the checks. genisoimage builds EVE
# apps' cloud-init config disks (the daemon runs it; its unit tests read the ISOs back with isoinfo).
# busybox-static and util-linux's unshare: the container init's tests run it as PID 1 of a new
# PID namespace on a busybox root filesystem. containerd: the tests of EVE's container volumes
# (xen-ctrd's, the daemon's, and the box's, which copies it into dom0) start a private one.
# For the fuzz targets (scripts/fuzz.sh, which test.sh runs): rustup's nightly toolchain and
# cargo-fuzz, installed like cargo-deb.
# Re-runs are cheap. Never removes a package.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi

packages=(libxen-dev libclang-dev pkg-config gcc libc6-dev make git ca-certificates curl
  dpkg-dev help2man man-db systemd lintian qemu-utils genisoimage busybox-static util-linux containerd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-remove "${missing[@]}"
else
  echo "setup: system packages present"
fi

# Under sudo, Rust and cargo-deb are installed as the user who ran sudo, into their own
# ~/.cargo and ~/.rustup, so that their cargo directories get no root-owned files.
as_user=()
if [ -n "${SUDO_UID:-}" ] && [ "$SUDO_UID" != 0 ]; then
  # shellcheck disable=SC2054 # the commas belong to one sudo option
  as_user=(sudo -u "#$SUDO_UID" --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME)
fi
# rustup's cargo first (scripts/cargo-env.sh): Debian's own cargo is too old.
. "$(dirname "$0")/cargo-env.sh"

need_rust() {
  command -v cargo >/dev/null 2>&1 || return 0
  local v; v=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n1.89.0\n' "$v" | sort -V | head -1)" != "1.89.0" ]
}
if need_rust; then
  echo "setup: installing a Rust toolchain with rustup (https://rustup.rs) into ${CARGO_HOME:-$HOME/.cargo}"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    "${as_user[@]}" sh -s -- -y --profile minimal -c rustfmt,clippy
  . "$(dirname "$0")/cargo-env.sh"
  echo "setup: $(cargo --version) (the project's scripts find it; for your shell: source \$HOME/.cargo/env)"
else
  echo "setup: $(cargo --version)"
fi

# cargo-deb, pinned (3.8.0 needs rustc >= 1.85) and built with its own Cargo.lock, into
# $CARGO_HOME/bin beside cargo, where test.sh finds it.
cargo_deb_version=3.8.0
cargo=$(command -v cargo || echo "${CARGO_HOME:-$HOME/.cargo}/bin/cargo")
if [ "$("${as_user[@]}" "$cargo" deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "setup: installing cargo-deb $cargo_deb_version (a few minutes)"
  "${as_user[@]}" "$cargo" install --quiet --locked --version "$cargo_deb_version" cargo-deb
else
  echo "setup: cargo-deb $cargo_deb_version"
fi

# The fuzz targets build on nightly (sanitizers, libFuzzer's coverage instrumentation); only
# the fuzz/ crate uses it. cargo-fuzz is pinned and built with its own Cargo.lock.
fuzz_toolchain=${FUZZ_TOOLCHAIN:-nightly}
cargo_fuzz_version=0.13.2
rustup=$(command -v rustup || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rustup")
if ! [ -x "$rustup" ]; then
  echo "setup: the fuzz targets need rustup (https://rustup.rs) for a nightly toolchain; cargo is not rustup's" >&2
  exit 1
fi
if "${as_user[@]}" "$rustup" run "$fuzz_toolchain" rustc --version >/dev/null 2>&1; then
  echo "setup: $("${as_user[@]}" "$rustup" run "$fuzz_toolchain" rustc --version)"
else
  echo "setup: installing the $fuzz_toolchain toolchain (for the fuzz targets)"
  "${as_user[@]}" "$rustup" toolchain install "$fuzz_toolchain" --profile minimal
fi
if [ "$("${as_user[@]}" "$cargo" fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  echo "setup: installing cargo-fuzz $cargo_fuzz_version"
  "${as_user[@]}" "$cargo" install --quiet --locked --version "$cargo_fuzz_version" cargo-fuzz
else
  echo "setup: cargo-fuzz $cargo_fuzz_version"
fi
