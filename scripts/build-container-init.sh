#!/bin/bash
# build-container-init.sh - builds xen-container-init, the /init of a container guest's initramfs,
# as a static executable (glibc's crt-static: the initramfs has no libc), prints its path, and
# checks that it has no program interpreter (and, with file(1), that file calls it static).
# The explicit --target keeps RUSTFLAGS off build scripts and proc macros (they run on the host),
# and its own target dir keeps these objects apart from the workspace's normal build.
# CARGO_TARGET_DIR overrides the target dir (default target/static); extra args go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cargo-env.sh

target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target/static}
# Stripped: the initramfs carries it into every container guest (2.8 MB, not 15.7).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C strip=symbols" \
  cargo build --release -p xen-container-init --bin xen-container-init \
  --target "$target" --target-dir "$target_dir" "$@"

bin="$target_dir/$target/release/xen-container-init"
# An ELF program header of type PT_INTERP (3) or PT_DYNAMIC (2) means dynamically linked.
# (static-pie binaries have PT_DYNAMIC for their own relocations but no PT_INTERP: accepted.)
if ! python3 - "$bin" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    data = f.read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF"
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
sys.exit(1 if 3 in types else 0)
PY
then
  echo "error: $bin is dynamically linked (it has a program interpreter)" >&2
  exit 1
fi
if command -v file >/dev/null; then
  file -b "$bin" | grep -Eq 'statically linked|static-pie linked' || {
    echo "error: file(1) says $bin is not static: $(file -b "$bin")" >&2
    exit 1
  }
fi
echo "$bin"
