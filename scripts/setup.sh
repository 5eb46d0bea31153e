#!/bin/bash
# setup.sh - install what building and testing this project needs on Debian 12 (bookworm).
#
# System packages: the Xen 4.17 libraries we link (libxen-dev), libclang for bindgen,
# pkg-config and a C compiler. A Rust toolchain (>= 1.89, edition 2024) via rustup if cargo
# is missing or too old (Debian 12's own rustc is 1.63). The Xen test box installs its own
# extra packages (QEMU, debootstrap...) when it is first built (tests/xen-box/build.sh).
# Re-runs are cheap. Never removes a package.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi

packages=(libxen-dev libclang-dev pkg-config gcc libc6-dev make git ca-certificates curl)
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

need_rust() {
  command -v cargo >/dev/null 2>&1 || return 0
  local v; v=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n1.89.0\n' "$v" | sort -V | head -1)" != "1.89.0" ]
}
if need_rust; then
  echo "setup: installing a Rust toolchain with rustup (https://rustup.rs)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
  echo "setup: run 'source \$HOME/.cargo/env' or open a new shell to get cargo on PATH"
else
  echo "setup: $(cargo --version)"
fi
