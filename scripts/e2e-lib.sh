# shellcheck shell=bash
# shellcheck disable=SC2034  # the layout constants are read by the sourcing scripts
# Helpers sourced by the scripts/e2e-*.sh jobs (not run directly).
# Each job sets PROG before sourcing so messages name the job that failed.

E2E_SUITE=${E2E_SUITE:-bookworm}

die() { echo "${PROG:-e2e}: error: $*" >&2; exit 1; }
log() { echo "${PROG:-e2e}: $*" >&2; }

# The Debian mirror this machine's apt uses (scripts/debian-mirror.sh; DEBIAN_MIRROR wins).
debian_mirror() {
  "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh" || die "no Debian mirror found; set DEBIAN_MIRROR"
}

# shellcheck source=scripts/private-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

# Seconds since the epoch with millisecond resolution, for timings in reports.
now() { date +%s.%N | cut -c1-14; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# Partition layout of the Raspberry Pi OS Lite stand-in (sectors of 512 bytes).
E2E_P1_START=8192
E2E_P1_SIZE=1048576     # 512 MiB FAT32 "bootfs"
E2E_P2_START=$((E2E_P1_START + E2E_P1_SIZE))
E2E_P2_SIZE=${E2E_P2_SIZE:-4194304}   # 2 GiB ext4 "rootfs"
E2E_DISK_ID=0xe2e0b007
E2E_PARTUUID_PREFIX=e2e0b007

# Boot an image under qemu-system-aarch64 (Debian arm64 kernel, -M virt, TCG: no KVM, no root,
# no binfmt_misc). Serial console goes to LOG; the VM is killed after TIMEOUT seconds.
# Usage: qemu_boot OUT_DIR IMAGE LOG TIMEOUT [extra kernel command line [qemu disk cache mode]]
# cache=unsafe (provisioning only) turns the guest's flushes into no-ops: dpkg fsyncs a lot.
qemu_boot() {
  local out=$1 img=$2 logf=$3 tmo=$4 extra=${5:-} cache=${6:-writeback} rc=0
  timeout -k 10 "$tmo" qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 \
    -nographic -no-reboot -kernel "$out/kernel/vmlinuz" -initrd "$out/initrd.gz" \
    -drive "file=$img,if=none,format=raw,id=hd0,cache=$cache" -device virtio-blk-device,drive=hd0 \
    -append "console=ttyAMA0 panic=-1 $extra" < /dev/null > "$logf" 2>&1 || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    tail -n 30 "$logf" >&2; die "VM did not power off within $tmo s (log: $logf)"
  fi
  [ "$rc" -eq 0 ] || { tail -n 30 "$logf" >&2; die "qemu-system-aarch64 exited with $rc (log: $logf)"; }
}
