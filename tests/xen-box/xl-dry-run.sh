#!/bin/bash
# xl-dry-run.sh OUTDIR FILE.cfg... - what real xl 4.17 makes of each xl.cfg file, from one boot
# of the Xen box: for each FILE, OUTDIR/FILE.json (what `xl -N create FILE` printed on stdout),
# OUTDIR/FILE.err (its stderr) and OUTDIR/FILE.rc (its exit status); OUTDIR/xl.conf is the box's
# /etc/xen/xl.conf, the one xl read. The oracle for working on xl.cfg parsing without the whole
# end-to-end suite: compare with `domainctl create --dry-run --xl-conf OUTDIR/xl.conf FILE`.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR FILE.cfg..." >&2; exit 2; }
out=$1; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$out"
share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
mkdir "$share/cfgs"
cp -- "$@" "$share/cfgs/"
cat > "$share/xl-dry-run-in-dom0.sh" <<'INNER'
#!/bin/sh
cd /mnt/host/cfgs || exit 1
echo "@@@ xl.conf"; cat /etc/xen/xl.conf
for f in *; do
  echo "@@@ $f"
  xl -N create "$f" 2>/tmp/xl.err; rc=$?
  sed 's/^/!!! /' /tmp/xl.err
  # Some of xl's messages (libxlutil's RDM ones) end without a newline.
  [ -z "$(tail -c 1 /tmp/xl.err)" ] || echo
  echo "@@@ rc $rc"
done
echo "@@@ end"
INNER
chmod +x "$share/xl-dry-run-in-dom0.sh"
"$here/run.sh" --quiet --timeout 900 --file="$share/cfgs" -- "$share/xl-dry-run-in-dom0.sh" > "$share/output"
awk -v out="$out" '
  /^@@@ end$/ { exit }
  /^@@@ rc / { print $3 > (out "/" cur ".rc"); close(out "/" cur ".rc"); next }
  /^@@@ / { cur = substr($0, 5); if (cur == "xl.conf") { f = out "/xl.conf" } else { f = out "/" cur ".json"; e = out "/" cur ".err"; printf "" > e; printf "" > f } ; next }
  cur == "xl.conf" { print > f; next }
  /^!!! / { print substr($0, 5) > e; next }
  { print > f }
' "$share/output"
echo "xl's answers for $# files are in $out"
