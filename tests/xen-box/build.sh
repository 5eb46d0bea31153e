#!/bin/bash
# build.sh - build (or find up to date) the Xen test box: Xen 4.17 + a Debian bookworm dom0 that
# run.sh boots under QEMU's software emulation (TCG). Everything comes from Debian packages.
#
# The box is cached outside git's view, in $CACHE_DIR (default <repo>/target/xen-box), in a
# directory box-<key>/ whose key hashes
#   - the candidate versions, as this host's apt sees them, of the packages that make the box
#     (xen-hypervisor-4.17-amd64, xen-utils-4.17, linux-image-amd64, busybox-static), and
#   - this builder's own files (build.sh, files/*).
# When box-<key>/ is complete the script only says so (well under 2 s). Otherwise it rebuilds the
# box from scratch, points $CACHE_DIR/current at it and removes older box-* directories.
#
# Artefacts in box-<key>/:
#   xen                  the hypervisor, gunzipped: QEMU's multiboot loader needs the 32-bit ELF
#   vmlinuz              the Debian kernel (dom0; the same kernel runs the test guests)
#   dom0-initrd.cpio.gz  tiny busybox initramfs: loads virtio + ext4, mounts /dev/vda, switch_root
#   dom0.img             ext4 root filesystem of dom0 (run.sh boots it with snapshot=on)
#   versions.txt         versions of the key packages (also $CACHE_DIR/versions.txt and, in dom0,
#                        /var/lib/xenbox/versions.txt); versions-all.txt lists every package
# Inside dom0.img, /var/lib/xenbox/ holds the test guest: vmlinux (the guest kernel uncompressed, so
# `xl create` does not spend seconds xz-decompressing it under TCG), vmlinuz, domU-initrd.cpio.gz.
#
# Needs root to build (debootstrap, chroot, apt-get): run by another user, it re-runs itself under
# sudo when there is something to build, and hands the cache back to that user. Host packages it lacks are installed with
# `apt-get install --no-remove`: it never removes a host package. When bookworm's qemu-system-x86
# cannot be installed (a host with qemu-utils from bookworm-backports: its Breaks would make apt
# remove it), QEMU 7.2 is unpacked from the Debian debs into $CACHE_DIR/qemu instead.
#
# Knobs (environment): CACHE_DIR, MIRROR / SECURITY_MIRROR (default: the ones in the host's apt
# sources), XENBOX_APT_UPDATE=auto|always|never (auto: `apt-get update` when the last one this
# script ran is older than 6 h), XENBOX_IMG_SIZE (apparent size of dom0.img, default 2G).
# Options: --force (rebuild even if up to date), --help.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE_DIR="${CACHE_DIR:-$REPO/target/xen-box}"
SUITE=bookworm
XEN_VER=4.17
KEY_PKGS=("xen-hypervisor-$XEN_VER-amd64" "xen-utils-$XEN_VER" linux-image-amd64 busybox-static qemu-system-xen ovmf)
# Installed into dom0 on top of debootstrap's minbase.
# qemu-system-xen is the device model of HVM guests and the backend of qcow2 disks (qdisk),
# 9pfs and PV framebuffers; seabios and ovmf are HVM firmware, ipxe-qemu the emulated NICs'
# option ROMs, grub-xen-host the PV/PVH GRUB images that boot disk images; qemu-utils makes
# qcow2 images for tests; genisoimage makes EVE apps' cloud-init config disks (as EVE's mkisofs);
# openssh-server and -client join the dom0s of a pair of boxes (run-pair.sh; files/dom0-pair starts
# sshd by hand, without systemd); iputils-ping pings IPv4 and IPv6 (ping6 is a link to it).
DOM0_PKGS=(linux-image-amd64 "xen-hypervisor-$XEN_VER-amd64" "xen-utils-$XEN_VER" xenstore-utils
           iproute2 bridge-utils busybox-static kmod procps e2fsprogs pciutils iputils-ping
           qemu-system-xen qemu-utils seabios ovmf ipxe-qemu grub-xen-host genisoimage
           openssh-server openssh-client)
HOST_PKGS=(debootstrap cpio e2fsprogs file xz-utils gzip)
IMG_SIZE="${XENBOX_IMG_SIZE:-2G}"
APT_UPDATE="${XENBOX_APT_UPDATE:-auto}"
FORCE=0
ARGS=("$@")

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
log() { echo "[xen-box build +$((SECONDS - T0))s] $*"; }
die() { echo "[xen-box build +$((SECONDS - T0))s] ERROR: $*" >&2; exit 1; }
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1

# become_root WHAT: what needs root is missing; re-run this script as root through sudo (which
# hands the cache back to the invoking user when done), or fail saying so.
become_root() {
  [ "$IS_ROOT" = 1 ] && return 0
  command -v sudo >/dev/null 2>&1 || die "$1, and that needs root: run tests/xen-box/build.sh as root once"
  log "$1, and that needs root: re-running under sudo"
  exec 9>&-   # our lock: the root run takes it again
  exec sudo --preserve-env=CACHE_DIR,MIRROR,SECURITY_MIRROR,XENBOX_APT_UPDATE,XENBOX_IMG_SIZE,http_proxy,https_proxy \
    bash "$0" "${ARGS[@]}"
}
# give_back: under sudo, make the cache the invoking user's again, so that run.sh (which needs no
# root) can write its logs there and later builds by that user can replace it.
give_back() {
  if [ "$IS_ROOT" = 1 ] && [ -n "${SUDO_UID:-}" ] && [ "$SUDO_UID" != 0 ]; then
    chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$CACHE_DIR"
  fi
}

mkdir -p "$CACHE_DIR"
CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
# One build at a time (run.sh may call us from several shells).
exec 9>"$CACHE_DIR/.build.lock"
flock 9

# ------------------------------------------------------------------------------------ QEMU
QEMU_DIR="$CACHE_DIR/qemu"
# qemu_ok: is there a runnable qemu-system-x86_64 (the system one, or our unpacked copy)?
qemu_ok() {
  if command -v qemu-system-x86_64 >/dev/null 2>&1; then return 0; fi
  [ -x "$QEMU_DIR/usr/bin/qemu-system-x86_64" ] &&
    "$QEMU_DIR/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1
}
qemu_version() {
  if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "system $(qemu-system-x86_64 --version | head -1)"
  else
    echo "unpacked in $QEMU_DIR: $("$QEMU_DIR/usr/bin/qemu-system-x86_64" --version | head -1)"
  fi
}
apt_install() {  # never lets apt remove anything from the host
  apt-get install -y -q --no-install-recommends --no-remove "$@"
}
ensure_qemu() {
  qemu_ok && return 0
  become_root "there is no qemu-system-x86_64"
  if apt_install qemu-system-x86 > "$CACHE_DIR/qemu-install.log" 2>&1; then
    log "installed the host's qemu-system-x86"
    return 0
  fi
  log "qemu-system-x86 is not installable without removing host packages" \
      "(see $CACHE_DIR/qemu-install.log); unpacking the Debian debs into $QEMU_DIR"
  # The runtime libraries of qemu-system-x86_64 (its Depends minus the qemu-* packages we unpack).
  local deps
  deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
           --no-enhances qemu-system-x86 | awk '$1 ~ /Depends:/ && $2 !~ /^(<|qemu-)/ {print $2}' |
         sort -u)
  # shellcheck disable=SC2086
  apt_install $deps >> "$CACHE_DIR/qemu-install.log" 2>&1 ||
    die "cannot install QEMU's runtime libraries (see $CACHE_DIR/qemu-install.log)"
  local tmp="$CACHE_DIR/qemu.tmp"
  rm -rf "$tmp" "$QEMU_DIR"; mkdir -p "$tmp/debs"
  (cd "$tmp/debs" && apt-get download -q qemu-system-x86 qemu-system-common qemu-system-data) \
    >> "$CACHE_DIR/qemu-install.log" 2>&1 || die "apt-get download of the qemu debs failed"
  for d in "$tmp"/debs/*.deb; do dpkg -x "$d" "$tmp/root"; done
  if ldd "$tmp/root/usr/bin/qemu-system-x86_64" | grep 'not found'; then
    die "unpacked QEMU misses libraries (above)"
  fi
  mv "$tmp/root" "$QEMU_DIR"; rm -rf "$tmp"
  qemu_ok || die "unpacked QEMU does not run"
  log "QEMU: $(qemu_version)"
}

# ------------------------------------------------------------------------------------ key
# The Debian mirror: $MIRROR, else the one this host's apt uses (deb822 or one-line sources).
apt_uri() {  # $1: debian | debian-security
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}'
    grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } | grep -E "/$1/?\$" | head -1 || true
}

if [ "$IS_ROOT" = 1 ] && [ "$APT_UPDATE" != never ]; then
  stamp="$CACHE_DIR/.apt-update-stamp"
  if [ "$APT_UPDATE" = always ] || [ -z "$(find "$stamp" -mmin -360 2>/dev/null)" ]; then
    log "apt-get update (host)"
    if apt-get update -qq >/dev/null 2>"$CACHE_DIR/apt-update.log"; then touch "$stamp"
    else log "WARNING: apt-get update failed (see $CACHE_DIR/apt-update.log); using the lists as they are"
    fi
  fi
fi

candidates=$(apt-cache policy "${KEY_PKGS[@]}" |
  awk '/^[^ ]/ {p = $1; sub(/:$/, "", p)} /^ +Candidate:/ {print p "=" $2}')
for p in "${KEY_PKGS[@]}"; do
  grep -q "^$p=[^(]" <<<"$candidates" ||
    die "apt knows no candidate for $p: run 'apt-get update' (with bookworm in the apt sources)"
done
builder_hash=$(cd "$HERE" && sha256sum build.sh files/* | sha256sum | cut -c1-64)
KEY=$(printf '%s\nbuilder=%s\n' "$candidates" "$builder_hash" | sha256sum | cut -c1-16)
BOX="$CACHE_DIR/box-$KEY"
ARTEFACTS=(xen vmlinuz dom0-initrd.cpio.gz dom0.img versions.txt)

box_complete() {
  [ -f "$BOX/.complete" ] || return 1
  local a; for a in "${ARTEFACTS[@]}"; do [ -s "$BOX/$a" ] || return 1; done
}
publish() {  # point current at the box, refresh the top-level copy of versions.txt
  if [ "$(readlink "$CACHE_DIR/current" 2>/dev/null)" != "box-$KEY" ]; then
    ln -sfn "box-$KEY" "$CACHE_DIR/current.tmp" && mv -T "$CACHE_DIR/current.tmp" "$CACHE_DIR/current"
  fi
  cmp -s "$BOX/versions.txt" "$CACHE_DIR/versions.txt" || cp "$BOX/versions.txt" "$CACHE_DIR/versions.txt"
}

if [ "$FORCE" = 0 ] && box_complete; then
  ensure_qemu
  publish
  give_back
  log "up to date: $BOX"
  exit 0
fi

# ------------------------------------------------------------------------------------ build
become_root "the box in $BOX is missing or stale"
MIRROR="${MIRROR:-$(apt_uri debian)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-$(apt_uri debian-security)}"
[ -n "$MIRROR" ] || die "no Debian mirror in the host's apt sources: set MIRROR"
log "building box-$KEY (mirror $MIRROR${SECURITY_MIRROR:+, security $SECURITY_MIRROR})"
sed 's/^/    /' <<<"$candidates"

missing=()
for p in "${HOST_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing host packages: ${missing[*]}"
  apt_install "${missing[@]}" > "$CACHE_DIR/host-install.log" 2>&1 ||
    die "could not install ${missing[*]} (see $CACHE_DIR/host-install.log)"
fi
ensure_qemu

WORK="$CACHE_DIR/build"
ROOTFS="$WORK/rootfs"
umount_chroot() {
  local m
  for m in dev/pts dev proc sys; do
    if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then umount -l "$ROOTFS/$m" || true; fi
  done
}
trap umount_chroot EXIT
umount_chroot           # leftovers of an interrupted build
rm -rf "$WORK"
mkdir -p "$WORK"

log "debootstrap --variant=minbase $SUITE (log: $WORK/debootstrap.log)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
  { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

log "chroot: dist-upgrade from $SUITE-updates/-security, install Xen + kernel (log: $WORK/apt.log)"
cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
${SECURITY_MIRROR:+deb $SECURITY_MIRROR $SUITE-security main}
EOF
# Never start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
# Debian's initramfs is big and slow to boot; ours is built below. Divert update-initramfs.
chroot "$ROOTFS" dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
ln -sf /bin/true "$ROOTFS/usr/sbin/update-initramfs"
mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sys "$ROOTFS/sys"
mount --bind /dev "$ROOTFS/dev"
mount --bind /dev/pts "$ROOTFS/dev/pts"
{
  chroot "$ROOTFS" apt-get update &&
  chroot "$ROOTFS" apt-get -y dist-upgrade &&
  chroot "$ROOTFS" apt-get install -y --no-install-recommends "${DOM0_PKGS[@]}" &&
  chroot "$ROOTFS" apt-get clean
} > "$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get in the chroot failed"; }
umount_chroot

KVER=$(ls "$ROOTFS/usr/lib/modules" | sort -V | tail -n 1)
[ -f "$ROOTFS/boot/vmlinuz-$KVER" ] || die "no kernel in the chroot"
[ -f "$ROOTFS/boot/xen-$XEN_VER-amd64.gz" ] || die "no /boot/xen-$XEN_VER-amd64.gz in the chroot"
log "kernel $KVER"

STAGE="$CACHE_DIR/box-$KEY.tmp"
rm -rf "$STAGE"; mkdir -p "$STAGE"

# --- versions
chroot "$ROOTFS" dpkg-query -W -f '${Package} ${Version}\n' > "$STAGE/versions-all.txt"
{
  echo "# Xen test box box-$KEY, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $MIRROR $SUITE"
  grep -E '^(xen-|xenstore-|libxen|linux-image-|busybox|libc6 )' "$STAGE/versions-all.txt"
  echo "kernel $KVER"
  echo "qemu $(qemu_version)"
} > "$STAGE/versions.txt"
# Warn when the chroot got other versions than the host's apt announced (mirror moved meanwhile).
for c in $candidates; do
  p=${c%%=*} v=${c#*=}
  got=$(awk -v p="$p" '$1 == p {print $2}' "$STAGE/versions-all.txt")
  [ "$got" = "$v" ] || log "WARNING: host apt announced $p $v, the chroot installed '${got:-nothing}'"
done

# --- hypervisor and kernel
zcat "$ROOTFS/boot/xen-$XEN_VER-amd64.gz" > "$STAGE/xen"
file "$STAGE/xen" | grep -q 'ELF 32-bit' || die "the gunzipped Xen is not a 32-bit ELF"
cp "$ROOTFS/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"

# --- trim what a dom0 under QEMU never uses
log "trimming the root filesystem"
M="$ROOTFS/usr/lib/modules/$KVER/kernel"
rm -rf "$M/sound" \
  "$M/drivers/"{gpu,media,infiniband,iio,staging,comedi,hwmon,bluetooth,mmc,isdn,nfc,video,thunderbolt,mtd,leds,power,watchdog} \
  "$M/drivers/net/"{wireless,can,usb} "$M/net/"{wireless,mac80211,bluetooth}
# Of USB and HID what the USB adapter tests use: dom0's xHCI (run.sh gives it a tablet), the
# HVM guest's EHCI (libxl's version-2 controller) and a tablet's HID driver.
find "$M/drivers/usb" -mindepth 1 -maxdepth 1 ! -name core ! -name common ! -name host -exec rm -rf {} +
find "$M/drivers/hid" -mindepth 1 -maxdepth 1 ! -name usbhid ! -name 'hid.ko*' ! -name 'hid-generic.ko*' -exec rm -rf {} +
find "$M/drivers/net/ethernet" -mindepth 1 -maxdepth 1 ! -name intel -exec rm -rf {} +
# Of SCSI only what an emulated IDE disk needs (libata sits on the SCSI core and disk driver).
find "$M/drivers/scsi" -type f ! -name 'scsi_mod.ko*' ! -name 'sd_mod.ko*' ! -name 'scsi_common.ko*' -delete
rm -rf "$ROOTFS"/usr/share/{doc,man,info,locale}/* "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/boot/initrd.img* "$ROOTFS"/boot/xen-*.efi
chroot "$ROOTFS" depmod -a "$KVER"

# copy_modules DEST MODULE... : copy the modules and their dependencies (uncompressed: busybox
# insmod cannot read compressed ones) into DEST, and their load order into DEST/modules.order.
copy_modules() {
  local dest=$1 f b m; shift
  mkdir -p "$dest"; : > "$dest/modules.order"
  for m in "$@"; do
    chroot "$ROOTFS" modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r f; do
    b=$(basename "$f"); b=${b%.xz}; b=${b%.zst}; b=${b%.gz}
    case "$f" in
      *.xz) xz -dc "$ROOTFS$f" ;; *.zst) zstd -qdc "$ROOTFS$f" ;; *.gz) gzip -dc "$ROOTFS$f" ;;
      *) cat "$ROOTFS$f" ;;
    esac > "$dest/$b"
    echo "$b" >> "$dest/modules.order"
  done
}
mkcpio() {  # mkcpio DIR OUT
  (cd "$1" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) > "$2"
}
BUSYBOX="$ROOTFS/bin/busybox"
file -L "$BUSYBOX" | grep -q 'statically linked' || die "the chroot's busybox is not static"

# --- dom0 configuration
log "configuring dom0"
install -m 0755 "$HERE/files/dom0-init" "$ROOTFS/usr/local/sbin/xenbox-init"
install -m 0755 "$HERE/files/dom0-setup" "$ROOTFS/usr/local/sbin/xenbox-dom0-setup"
install -m 0755 "$HERE/files/dom0-poweroff" "$ROOTFS/usr/local/sbin/xenbox-poweroff"
install -m 0755 "$HERE/files/dom0-pair" "$ROOTFS/usr/local/sbin/xenbox-dom0-pair"
# The host keys openssh-server's postinst made would be the same in every box: a box of a pair
# makes its own (Ed25519) at boot, in xenbox-dom0-pair.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
mkdir -p "$ROOTFS/mnt/host" "$ROOTFS/var/lib/xenbox" "$ROOTFS/etc/xenbox"
echo xen-dom0 > "$ROOTFS/etc/hostname"
echo '/dev/vda / ext4 rw,noatime 0 1' > "$ROOTFS/etc/fstab"
chroot "$ROOTFS" passwd -d root >/dev/null   # test box: root without password on the console
# dom0_mem is fixed on Xen's command line: the toolstack must not balloon dom0.
sed -i 's/^#\?autoballoon=.*/autoballoon="off"/' "$ROOTFS/etc/xen/xl.conf"
grep -q '^autoballoon' "$ROOTFS/etc/xen/xl.conf" || echo 'autoballoon="off"' >> "$ROOTFS/etc/xen/xl.conf"
cat > "$ROOTFS/etc/xenbox/env" <<'EOF'
# What the box tells programs run in dom0 (sourced by xenbox-init and by root's shell).
export XENBOX=1
export XENBOX_GUEST_KERNEL=/var/lib/xenbox/vmlinux
export XENBOX_GUEST_KERNEL_COMPRESSED=/var/lib/xenbox/vmlinuz
export XENBOX_GUEST_RAMDISK=/var/lib/xenbox/domU-initrd.cpio.gz
export XENBOX_CONSOLE_LOG_DIR=/var/log/xen/console
export XENBOX_BRIDGE=xenbr0
export XENBOX_VERSIONS=/var/lib/xenbox/versions.txt
EOF
cat >> "$ROOTFS/root/.bashrc" <<'EOF'
. /etc/xenbox/env
[ -f /run/xenbox/env ] && . /run/xenbox/env
PS1='xen-dom0:\w# '
EOF
cp "$STAGE/versions.txt" "$ROOTFS/var/lib/xenbox/versions.txt"

# --- the test guest: the dom0 kernel + a busybox initramfs
log "building the guest initramfs"
G="$WORK/guest-initrd"
mkdir -p "$G"/{bin,sbin,proc,sys,dev,etc,tmp,lib/modules}
cp "$BUSYBOX" "$G/bin/busybox"
# The PV front ends; for HVM guests without PV drivers the emulated e1000 and IDE disk (ata_piix,
# sd_mod) and the ACPI power button (button, evdev: busybox acpid reads the input event); isofs
# reads a cloud-init config disk (xenbox.cidata=1); an HVM guest's USB controller (QEMU's EHCI,
# libxl's version 2) and the tablet passed through to it.
GUEST_MODULES=(xen-netfront xen-blkfront xen-pcifront e1000 ata_piix sd_mod button evdev isofs
  ehci-pci usbhid hid-generic)
copy_modules "$G/lib/modules" "${GUEST_MODULES[@]}"
for m in "${GUEST_MODULES[@]}"; do
  grep -q "^${m//-/[-_]}\.ko" "$G/lib/modules/modules.order" || log "note: $m is built in (no module)"
done
install -m 0755 "$HERE/files/guest-init" "$G/init"
mkcpio "$G" "$ROOTFS/var/lib/xenbox/domU-initrd.cpio.gz"
ln "$ROOTFS/boot/vmlinuz-$KVER" "$ROOTFS/var/lib/xenbox/vmlinuz"
# The uncompressed ELF inside the bzImage: find the payload's magic, decompress from there
# (trailing data after the stream makes the decompressor complain; the output is complete).
extract_vmlinux() {  # IMAGE OUT
  local pair magic tool off
  for pair in '\xfd7zXZ\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -qdc' '\x1f\x8b\x08\x00:gzip -dc'; do
    magic=${pair%%:*} tool=${pair#*:}
    command -v "${tool%% *}" >/dev/null || continue
    off=$(grep -obUaP "$magic" "$1" | head -n 1 | cut -d: -f1) || true
    [ -n "$off" ] || continue
    tail -c +$((off + 1)) "$1" | $tool > "$2" 2>/dev/null || true
    file "$2" | grep -q 'ELF 64-bit' && return 0
  done
  return 1
}
extract_vmlinux "$ROOTFS/boot/vmlinuz-$KVER" "$ROOTFS/var/lib/xenbox/vmlinux" ||
  die "could not extract an uncompressed vmlinux from vmlinuz-$KVER"

# --- dom0 initramfs
log "building the dom0 initramfs"
I="$WORK/dom0-initrd"
mkdir -p "$I"/{bin,proc,sys,dev,newroot,lib/modules}
cp "$BUSYBOX" "$I/bin/busybox"
copy_modules "$I/lib/modules" virtio_pci virtio_blk ext4
install -m 0755 "$HERE/files/dom0-initramfs-init" "$I/init"
mkcpio "$I" "$STAGE/dom0-initrd.cpio.gz"

# --- root filesystem image
umount_chroot
for m in proc sys dev; do
  ! mountpoint -q "$ROOTFS/$m" || die "$ROOTFS/$m is still mounted"
done
log "creating dom0.img (ext4, apparent size $IMG_SIZE)"
truncate -s "$IMG_SIZE" "$STAGE/dom0.img"
mkfs.ext4 -q -F -L xenbox-root -d "$ROOTFS" "$STAGE/dom0.img"

touch "$STAGE/.complete"
rm -rf "$BOX"
mv "$STAGE" "$BOX"
publish
for old in "$CACHE_DIR"/box-*; do
  [ "$old" = "$BOX" ] || { log "removing older $(basename "$old")"; rm -rf "$old"; }
done
rm -rf "$WORK"
give_back
log "done: $BOX ($(du -sh "$BOX" | cut -f1) on disk)"
cat "$BOX/versions.txt"
