#!/usr/bin/env bash
# Boot a baked acoupi image (or, with --standin, the bare base image) under
# qemu-system-aarch64 with snd-aloop as the sound card, run the in-guest checks
# (scripts/e2e-guest.sh), read the disk back from outside and print the report.
# Usage: scripts/e2e-run.sh [--standin | --image PATH.img[.xz]] [--out DIR]
#   --standin   no acoupi: prove kernel, systemd and the loopback signal path on base.img
#   --image     the image `make image` produced (default: newest DIR/dist/acoupi-*-arm64.img.xz)
#   --out       cache and work directory (default build/e2e; base.img, kernel, initrd there)
# Test-only extras (signal player, check unit, guest script) go into a COPY of the image
# (DIR/run/disk.img); the product image is never modified. Exit status 1 on any FAIL.
# Environment: E2E_TIMEOUT_1/E2E_TIMEOUT_2/E2E_TIMEOUT_STANDIN (seconds per boot),
# E2E_READY_WAIT (seconds each service gets to become READY in the guest, default 150).
set -euo pipefail
PROG=e2e-run
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
# shellcheck source=scripts/e2e-lib.sh
. "$here/e2e-lib.sh"
usage() { echo "usage: scripts/e2e-run.sh [--standin | --image PATH.img[.xz]] [--out DIR]" >&2; exit 2; }
standin=0 image='' out=build/e2e
while [ $# -gt 0 ]; do
  case $1 in
    --standin) standin=1; shift ;;
    --image) [ $# -ge 2 ] || usage; image=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    *) usage ;;
  esac
done
out=$(mkdir -p "$out" && cd "$out" && pwd)
for t in qemu-system-aarch64 debugfs sfdisk python3 xz; do
  command -v "$t" > /dev/null || die "$t not found (apt-get install qemu-system-arm e2fsprogs fdisk python3 xz-utils)"
done
t0=$(now)
"$here/e2e-initramfs.sh" "$out"
if [ "$standin" -eq 1 ]; then
  image=$out/base.img
  [ -f "$image" ] || "$here/e2e-base.sh" "$out"
elif [ -z "$image" ]; then
  # shellcheck disable=SC2012  # names are ours (acoupi-<version>-arm64.img.xz), newest first
  image=$(ls -t "$out"/dist/acoupi-*-arm64.img.xz 2> /dev/null | head -n1 || true)
  [ -n "$image" ] || die "no image given and none in $out/dist; run make e2e or pass --image"
fi
[ -f "$image" ] || die "image $image not found"

run=$out/run
rm -rf "$run"
mkdir -p "$run"
disk=$run/disk.img
log "copying $image to $disk (the product image stays untouched)"
case $image in
  *.xz) xz -dc "$image" | dd of="$disk" bs=1M conv=sparse status=none || die "cannot decompress $image" ;;
  *) cp --sparse=always "$image" "$disk" || die "cannot copy $image" ;;
esac
start=$(sfdisk -d "$disk" | awk -F'[=,]' '/(img|:) *start=/ && /type=83/ {gsub(/ /,"",$2); print $2; exit}')
[ -n "$start" ] || die "no Linux (type 83) partition in $image's MBR"
rootfs="$disk?offset=$((start * 512))"
: > "$run/host.txt"
if e2fsck -fn "$rootfs" > "$run/e2fsck-image.log" 2>&1; then
  echo "E2E image-rootfs-clean PASS e2fsck -fn of $(basename "$image") before any test extra" >> "$run/host.txt"
else
  echo "E2E image-rootfs-clean FAIL e2fsck -fn of $(basename "$image"): see $run/e2fsck-image.log" >> "$run/host.txt"
fi

# --- test-only extras ------------------------------------------------------------------
x=$run/extras
mkdir -p "$x"
cp "$here/e2e-guest.sh" "$x/guest.sh"
# The known signal: a 16-bit counter (sample n = n mod 65536), endless, 48 kHz mono S16_LE.
# Every captured file must be a run of consecutive counter values; consecutive gapless files
# must continue each other with no sample missing.
cat > "$x/counter.pl" << 'PL'
binmode STDOUT; $| = 1; my $n = 0;
while (1) { print pack("v*", map { ($n + $_) & 0xffff } 0 .. 4799); $n += 4800; }
PL
cat > "$x/e2e-signal.service" << 'UNIT'
[Unit]
Description=e2e: play the counter signal into hw:Loopback,0,0 (test only)
Before=acoupi.service e2e-check.service

[Service]
# A 2 s buffer rides over scheduling hiccups of the emulated CPU without an underrun.
ExecStart=/bin/sh -c 'exec perl /usr/local/lib/e2e/counter.pl | aplay -q -D hw:Loopback,0,0 -t raw -f S16_LE -r 48000 -c 1 -B 2000000'

[Install]
WantedBy=multi-user.target
UNIT
cat > "$x/e2e-check.service" << 'UNIT'
[Unit]
Description=e2e: in-guest checks (test only)
# Not pulled into multi-user.target's ordering (that would be a cycle): it runs after it.
DefaultDependencies=no
After=multi-user.target
Requires=sysinit.target

[Service]
Type=oneshot
ExecStart=/usr/local/lib/e2e/guest.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyAMA0
TimeoutStartSec=1200

[Install]
WantedBy=multi-user.target
UNIT
{
  mkdir_missing "$rootfs" /usr/local/lib/e2e
  for f in guest.sh counter.pl; do
    echo "write $x/$f /usr/local/lib/e2e/$f"
    echo "sif /usr/local/lib/e2e/$f mode 0100755"
    echo "sif /usr/local/lib/e2e/$f uid 0"
    echo "sif /usr/local/lib/e2e/$f gid 0"
  done
  mkdir_missing "$rootfs" /etc/systemd/system/multi-user.target.wants
  for u in e2e-signal.service e2e-check.service; do
    echo "write $x/$u /etc/systemd/system/$u"
    echo "sif /etc/systemd/system/$u mode 0100644"
    echo "sif /etc/systemd/system/$u uid 0"
    echo "sif /etc/systemd/system/$u gid 0"
    echo "symlink /etc/systemd/system/multi-user.target.wants/$u /etc/systemd/system/$u"
  done
  # The check unit owns the serial console; no login prompt in the middle of the report.
  echo "symlink /etc/systemd/system/serial-getty@ttyAMA0.service /dev/null"
} > "$x/debugfs.cmds"
debugfs -w -f "$x/debugfs.cmds" "$rootfs" > "$x/debugfs.log" 2>&1 || die "debugfs could not add the test extras (log: $x/debugfs.log)"
debugfs -R "cat /usr/local/lib/e2e/guest.sh" "$rootfs" 2> /dev/null | cmp -s - "$x/guest.sh" \
  || { cat "$x/debugfs.log" >&2; die "test extras did not land in $disk"; }
if grep -q "image-rootfs-clean PASS" "$run/host.txt" && ! e2fsck -fn "$rootfs" > "$x/e2fsck.log" 2>&1; then
  cat "$x/e2fsck.log" >&2; die "adding the test extras left the root file system unclean"
fi

# --- boots ----------------------------------------------------------------------------
boot() {
  local phase=$1 tmo=$2 b0
  b0=$(now)
  log "boot $phase (timeout $tmo s)"
  qemu_boot "$out" "$disk" "$run/console-$phase.log" "$tmo" "quiet e2e.phase=$phase e2e.wait=${E2E_READY_WAIT:-150}"
  echo "E2E-DATA host_boot_seconds_$phase $(elapsed "$b0")" >> "$run/host.txt"
  log "boot $phase done in $(elapsed "$b0") s"
  debugfs -R "cat /var/lib/e2e/results-$phase.txt" "$rootfs" > "$run/results-$phase.txt" 2> /dev/null || true
  [ -s "$run/results-$phase.txt" ] || { tail -n 40 "$run/console-$phase.log" >&2; log "boot $phase left no results file"; }
}
if [ "$standin" -eq 1 ]; then
  boot standin "${E2E_TIMEOUT_STANDIN:-300}"
  debugfs -R "dump /var/lib/e2e/standin.raw $run/standin.raw" "$rootfs" > /dev/null 2>&1 || true
  mode=standin
else
  boot 1 "${E2E_TIMEOUT_1:-900}"
  boot 2 "${E2E_TIMEOUT_2:-600}"
  # rdump creates $run/storages itself and refuses an existing one.
  rm -rf "$run/storages"
  debugfs -R "rdump /var/lib/acoupi/storages $run" "$rootfs" > "$run/rdump.log" 2>&1 || true
  mode=acoupi
fi
e2fsck -fn "$rootfs" > "$run/e2fsck.log" 2>&1 && fsck=PASS || fsck=FAIL
echo "E2E rootfs-clean $fsck e2fsck -fn after power-off" >> "$run/host.txt"
echo "E2E-DATA host_total_seconds $(elapsed "$t0")" >> "$run/host.txt"
python3 "$here/e2e-verify.py" --mode "$mode" --run "$run"
