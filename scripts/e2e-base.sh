#!/usr/bin/env bash
# Build a Debian arm64 (bookworm) stand-in for a Raspberry Pi OS Lite image, with the same
# partition layout: MBR, p1 = 512 MiB FAT32 "bootfs" at sector 8192, p2 = ext4 "rootfs".
# It holds systemd, udev, kmod, dbus, alsa-utils, sqlite3 and the Debian arm64 kernel modules.
# Usage: scripts/e2e-base.sh [OUT_DIR]     (default build/e2e)
# Result (cached): OUT_DIR/base.img, usable as `make image BASE_IMAGE=OUT_DIR/base.img`.
#
# Rootless and without binfmt_misc: debootstrap's first stage (package download + unpack of the
# essential set, all packages listed with --include) runs on the host; the ext4 is built from
# that tree with `mke2fs -d`; the second stage (dpkg configuration, incl. systemd's postinst,
# which crashes under proot) runs natively inside the arm64 VM, from the initramfs, before
# systemd ever starts (`e2e.provision`, see e2e-initramfs.sh).
set -euo pipefail
PROG=e2e-base
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/e2e-lib.sh
. "$here/e2e-lib.sh"
[ $# -le 1 ] || { echo "usage: scripts/e2e-base.sh [OUT_DIR]" >&2; exit 2; }
out=$(mkdir -p "${1:-build/e2e}" && cd "${1:-build/e2e}" && pwd)
img=$out/base.img
if [ -f "$img" ] && [ "$img" -nt "$0" ] && [ "$img" -nt "$here/e2e-lib.sh" ]; then
  log "cached: $img"; exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap's first stage needs root (device nodes, ownership); run as root"
for t in debootstrap mke2fs sfdisk mkfs.vfat mcopy e2fsck qemu-system-aarch64 depmod; do
  command -v "$t" > /dev/null || die "$t not found (apt-get install debootstrap e2fsprogs fdisk dosfstools mtools qemu-system-arm kmod)"
done
t0=$(now)
"$here/e2e-initramfs.sh" "$out"
release=$(cat "$out/kernel/release")

packages=systemd,systemd-sysv,udev,kmod,dbus,systemd-timesyncd,alsa-utils,libasound2,dosfstools,debian-archive-keyring,sqlite3,procps
root=$out/rootfs
rm -rf "$root" "$img" "$img.tmp"
mkdir -p "$out/debootstrap-cache"
log "debootstrap first stage ($E2E_SUITE arm64, +$packages)"
t1=$(now)
debootstrap --arch=arm64 --foreign --variant=minbase --cache-dir="$out/debootstrap-cache" \
  --include="$packages" "$E2E_SUITE" "$root" "$(debian_mirror)" > "$out/debootstrap.log" 2>&1 \
  || { tail -n 20 "$out/debootstrap.log" >&2; die "debootstrap first stage failed (log: $out/debootstrap.log)"; }
log "first stage done in $(elapsed "$t1") s"

# debootstrap's second stage resolves every package against the suite's whole Packages index
# (~50 MB) with perl; emulated, that alone takes many minutes. Keep only the stanzas of the
# packages the first stage downloaded: the second stage installs exactly those.
python3 - "$root" << 'PY' || die "cannot trim the Packages index in $root"
import pathlib, sys
root = pathlib.Path(sys.argv[1])
keep = {p.name.split("_")[0] for p in (root / "var/cache/apt/archives").glob("*.deb")}
for f in (root / "var/lib/apt/lists").glob("*_Packages"):
    stanzas = f.read_text().split("\n\n")
    kept = [s for s in stanzas if s.startswith("Package: ") and s.split("\n", 1)[0][9:] in keep]
    f.write_text("\n\n".join(kept) + "\n\n")
    print(f"e2e-base: {f.name}: {len(kept)} of {len(stanzas)} stanzas kept", file=sys.stderr)
PY

# The kernel's modules (the kernel itself is passed to qemu with -kernel, as a Pi's firmware
# loads it from the boot partition), depmod'ed so udev/mount can autoload e.g. vfat. Only the
# groups a -M virt guest can use: the whole tree (~300 MB, mostly network, GPU and media
# drivers) would triple the data `make image` has to compress.
mkdir -p "$root/lib/modules/$release" "$root/boot/firmware"
(cd "$out/kernel/tree/lib/modules/$release" \
  && cp -a --parents modules.order modules.builtin modules.builtin.modinfo kernel/fs kernel/sound kernel/lib \
    kernel/crypto kernel/arch kernel/block kernel/drivers/virtio kernel/drivers/block kernel/drivers/char \
    kernel/drivers/rtc kernel/drivers/watchdog "$root/lib/modules/$release/") \
  || die "cannot copy the kernel modules of $release"
depmod -b "$root" "$release" || die "depmod failed in $root for $release"
cp "$out/kernel/vmlinuz" "$root/boot/vmlinuz-$release"
cat > "$root/etc/fstab" <<FSTAB
proc                        /proc           proc    defaults          0       0
PARTUUID=${E2E_PARTUUID_PREFIX}-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=${E2E_PARTUUID_PREFIX}-02  /               ext4    defaults,noatime  0       1
FSTAB
echo raspberrypi > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' > "$root/etc/hosts"
# Runs in the VM (chroot from the initramfs), natively on the arm64 kernel.
cat > "$root/provision.sh" <<'PROV'
#!/bin/sh
set -e
/debootstrap/debootstrap --second-stage
apt-get clean
# Stamp /etc and /var as up to date, as on a shipped image: units guarded by
# ConditionNeedsUpdate (systemd-sysusers, ldconfig, hwdb) must not run on first boot by chance.
# (What systemd-update-done does; Debian's systemd does not ship it: the stamp's mtime is /usr's.)
for d in /etc /var; do
  printf '# Stamp of the last update of %s (see ConditionNeedsUpdate= in systemd.unit(5)).\n' "$d" > "$d/.updated"
  touch -r /usr "$d/.updated"
done
# Root may log in on the serial console without a password (test VM only).
passwd -d root
rm -f /provision.sh
PROV
chmod 755 "$root/provision.sh"

mkdir -p "$out/bootfs"
rm -f "$out"/bootfs/*
printf 'console=serial0,115200 console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 fsck.repair=yes rootwait\n' \
  "$E2E_PARTUUID_PREFIX" > "$out/bootfs/cmdline.txt"
printf '# Raspberry Pi OS Lite stand-in for the acoupi e2e test\narm_64bit=1\ndtparam=audio=on\n' > "$out/bootfs/config.txt"
printf 'acoupi e2e base: Debian %s arm64, kernel %s\n' "$E2E_SUITE" "$release" > "$out/bootfs/issue.txt"

log "assembling the MBR image"
truncate -s $(((E2E_P2_START + E2E_P2_SIZE) * 512)) "$img.tmp"
printf 'label: dos\nlabel-id: %s\nunit: sectors\n\nstart=%d, size=%d, type=c, bootable\nstart=%d, size=%d, type=83\n' \
  "$E2E_DISK_ID" "$E2E_P1_START" "$E2E_P1_SIZE" "$E2E_P2_START" "$E2E_P2_SIZE" | sfdisk -q "$img.tmp" \
  || die "sfdisk failed on $img.tmp"
mkfs.vfat -F 32 -n bootfs --offset "$E2E_P1_START" "$img.tmp" $((E2E_P1_SIZE / 2)) > "$out/mkfs.log" 2>&1 \
  || { cat "$out/mkfs.log" >&2; die "mkfs.vfat failed on $img.tmp"; }
MTOOLS_SKIP_CHECK=1 mcopy -i "$img.tmp@@$((E2E_P1_START * 512))" "$out"/bootfs/* ::/ || die "mcopy to bootfs failed"
mke2fs -q -F -t ext4 -L rootfs -E "offset=$((E2E_P2_START * 512))" -d "$root" "$img.tmp" $((E2E_P2_SIZE / 2))k \
  || die "mke2fs -d $root failed"

log "second stage inside the VM (dpkg --configure of all packages, natively on arm64)"
t2=$(now)
qemu_boot "$out" "$img.tmp" "$out/provision.log" "${E2E_PROVISION_TIMEOUT:-1200}" e2e.provision unsafe
grep -q '^E2E-PROVISION OK' "$out/provision.log" \
  || { tail -n 30 "$out/provision.log" >&2; die "provisioning in the VM failed (log: $out/provision.log)"; }
log "second stage done in $(elapsed "$t2") s"
e2fsck -fn "$img.tmp?offset=$((E2E_P2_START * 512))" > "$out/e2fsck.log" 2>&1 \
  || { cat "$out/e2fsck.log" >&2; die "rootfs of $img.tmp is not clean after provisioning"; }
mv "$img.tmp" "$img"
rm -rf "$root"
log "$img ready in $(elapsed "$t0") s"
