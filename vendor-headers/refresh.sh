#!/bin/bash
# refresh.sh [VERSION] - re-vendor the Xen headers our bindings are generated from.
#
# Downloads Debian's libxen-dev .deb (default: the version named in ./VERSION; give another
# version, e.g. one `apt-cache policy libxen-dev` lists, to move to it), unpacks it with
# dpkg -x, and copies exactly the headers that our wrapper (../xen-sys/wrapper.h) pulls in,
# found by asking the C preprocessor. Writes VERSION and Debian's copyright file beside them.
# Needs: apt-get (with bookworm in its sources), dpkg, gcc. Run it as any user.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(sed -n 's/^package-version: //p' "$here/VERSION")}"
[ -n "$version" ] || { echo "refresh.sh: no version given and none in $here/VERSION" >&2; exit 1; }

work="$(mktemp -d)"; chmod 0755 "$work"  # apt-get download drops to user _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "libxen-dev=$version" >/dev/null)
deb=$(ls "$work"/libxen-dev_*.deb)
dpkg -x "$deb" "$work/root"
inc="$work/root/usr/include"

# Which headers does the wrapper need? Ask cpp, with only the unpacked tree as the Xen include dir.
# -nostdinc is not used: libc headers come from the system; every Xen header must come from $inc.
needed=$(gcc -M -I "$inc" -I "$here/../xen-sys/c" "$here/../xen-sys/wrapper.h" |
  tr ' \\' '\n\n' | grep -F "$inc/" | sed "s|^$inc/||" | sort -u)
[ -n "$needed" ] || { echo "refresh.sh: the preprocessor found no Xen headers" >&2; exit 1; }

rm -rf "$here/include"
for h in $needed; do
  install -D -m 0644 "$inc/$h" "$here/include/$h"
done
install -m 0644 "$work/root/usr/share/doc/libxen-dev/copyright" "$here/COPYRIGHT.debian"
arch=$(dpkg-deb -f "$deb" Architecture)
cat > "$here/VERSION" <<EOT
# The Xen headers in include/ are copied unchanged from this Debian package (refresh.sh rewrites this file).
package: libxen-dev
package-version: $version
architecture: $arch
xen-version: $(echo "$version" | sed 's/[+~-].*//')
sha256: $(sha256sum "$deb" | cut -d' ' -f1)
headers: $(echo $needed)
EOT
echo "vendored $(echo "$needed" | wc -l) headers from libxen-dev $version"
