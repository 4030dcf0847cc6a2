#!/usr/bin/env bash
# Build a small synthetic Raspberry Pi OS-like base image for tests and benchmarks: MBR,
# 512 MiB FAT32 `bootfs` (config.txt, cmdline.txt) at 4 MiB as Pi OS has it, then an ext4
# `rootfs` with a minimal /etc (passwd, group, shadow, os-release) and the systemd
# directories. Sparse; no root or loop devices needed.
# --boot-mib below 512 formats FAT32 with 512-byte clusters (mkfs.vfat -s 1): with default
# clusters a small FAT32 has too few clusters and mcopy fails ("No directory slots").
# Usage: scripts/make-test-base.sh [--boot-mib N] [--root-mib N] [--fill-mib N] [--codename NAME]
#          [--root-fs ext4|none] [--extra-partition] [--payload DIR] OUT.img
# --payload copies DIR to /usr/share/payload in the root (realistic data for benchmarks).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: ${0##*/} [--boot-mib N] [--root-mib N] [--fill-mib N] [--codename NAME] [--root-fs ext4|none] [--extra-partition] [--payload DIR] OUT.img" >&2
	exit 2
}

: "${SOURCE_DATE_EPOCH:=1700000000}"
boot_mib=512 root_mib=256 fill_mib=0 codename=trixie root_fs=ext4 extra=no payload='' out=''
while (($#)); do
	# Every option but the flags takes a value.
	case $1 in --extra-partition | -h | --help) ;; --*) (($# >= 2)) || usage ;; esac
	case $1 in
	--boot-mib) boot_mib=${2:-} && shift 2 ;;
	--root-mib) root_mib=${2:-} && shift 2 ;;
	--fill-mib) fill_mib=${2:-} && shift 2 ;;
	--codename) codename=${2:-} && shift 2 ;;
	--root-fs) root_fs=${2:-} && shift 2 ;;
	--extra-partition) extra=yes && shift ;;
	--payload) payload=${2:-} && shift 2 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*) [[ -z $out ]] || usage; out=$1 && shift ;;
	esac
done
[[ -n $out && $boot_mib =~ ^[0-9]+$ && $root_mib =~ ^[0-9]+$ && $fill_mib =~ ^[0-9]+$ && -n $codename ]] || usage
[[ $root_fs == ext4 || $root_fs == none ]] || usage
[[ -z $payload || -d $payload ]] || die "payload directory $payload not found"
need sfdisk mkfs.vfat mcopy mke2fs debugfs jq

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sectors: FAT32 at 4 MiB (512 MiB by default, as Pi OS), root right after, optional 8 MiB third.
p1s=8192 p1n=$((boot_mib * 2048))
p2s=$((p1s + p1n)) p2n=$((root_mib * 2048))
p3s=$((p2s + p2n)) p3n=16384
total=$((p2s + p2n))
[[ $extra == no ]] || total=$((p3s + p3n))

log "creating $out ($((total / 2048)) MiB, sparse)"
rm -f "$out"
truncate -s $((total * 512)) "$out"
{
	printf 'label: dos\nlabel-id: 0xfea5fea5\nunit: sectors\n\n'
	printf 'start=%d, size=%d, type=c, bootable\n' "$p1s" "$p1n"
	printf 'start=%d, size=%d, type=83\n' "$p2s" "$p2n"
	[[ $extra == no ]] || printf 'start=%d, size=%d, type=83\n' "$p3s" "$p3n"
} | sfdisk -q "$out"

# Boot partition: fixed serial so two runs give the same bytes.
small=()
if ((boot_mib < 512)); then small=(-s 1); fi
mkfs.vfat -F 32 "${small[@]}" -n bootfs -i FEA5B007 --offset "$p1s" "$out" $((p1n / 2)) >/dev/null 2>&1 ||
	die "mkfs.vfat failed on $out"
mkdir -p "$tmp/boot"
printf '# synthetic test base\narm_64bit=1\ndtparam=audio=on\n' >"$tmp/boot/config.txt"
printf 'console=serial0,115200 console=tty1 root=PARTUUID=fea5fea5-02 rootfstype=ext4 fsck.repair=yes rootwait\n' \
	>"$tmp/boot/cmdline.txt"
touch -d "@$SOURCE_DATE_EPOCH" "$tmp/boot/"*
MTOOLS_SKIP_CHECK=1 mcopy -m -i "$out@@$((p1s * 512))" "$tmp/boot/config.txt" "$tmp/boot/cmdline.txt" ::/

if [[ $root_fs == none ]]; then
	log "leaving partition 2 without a file system"
	exit 0
fi

# Root file system staged in a directory, then written by mke2fs -d.
r=$tmp/root
mkdir -p "$r"/{etc/systemd/system/multi-user.target.wants,etc/apt,usr/bin,usr/sbin,usr/share,usr/lib/systemd/system} \
	"$r"/{usr/lib/sysusers.d,usr/lib/tmpfiles.d,var/lib,var/log,boot/firmware,home,root,run,tmp}
cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
PASSWD
cat >"$r/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
adm:x:4:
audio:x:29:
shadow:x:42:
nogroup:x:65534:
systemd-network:x:998:
GROUP
printf 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\nsystemd-network:!*:19000::::::\n' \
	>"$r/etc/shadow"
printf 'root:*::\ndaemon:*::\nadm:*::\naudio:*::\nshadow:*::\nnogroup:*::\nsystemd-network:!*::\n' >"$r/etc/gshadow"
printf 'PRETTY_NAME="Debian GNU/Linux (synthetic acoupi test base)"\nID=debian\nVERSION_CODENAME=%s\n' \
	"$codename" >"$r/etc/os-release"
printf 'raspberrypi\n' >"$r/etc/hostname"
printf '#!/bin/sh\necho "This account is currently not available."\nexit 1\n' >"$r/usr/sbin/nologin"
chmod 0755 "$r/usr/sbin/nologin"
chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
if ((fill_mib > 0)); then
	# Real data: mke2fs -d stores zero blocks as holes, which would not fill anything.
	head -c $((fill_mib * 1048576)) <(yes 'acoupi test fill') >"$r/var/fill"
fi
find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
if [[ -n $payload ]]; then
	# Hard links when on the same file system: no copy of a gigabyte just to read it once.
	cp -al "$payload" "$r/usr/share/payload" 2>/dev/null || cp -a "$payload" "$r/usr/share/payload"
fi

log "creating ext4 rootfs ($root_mib MiB)"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -L rootfs \
	-U 6c8e3f7a-0b5e-4c39-9d3a-acc0acc0acc0 -E "offset=$((p2s * 512)),root_owner=0:0,hash_seed=6c8e3f7a-0b5e-4c39-9d3a-acc0acc0acc0" \
	-d "$r" "$out" "$((p2n / 2))k" || die "mke2fs failed on $out (root file system too small for --fill-mib?)"

# mke2fs -d keeps the invoking user's ids: make everything root's, shadow files root:shadow.
cmds=$tmp/owners
{
	echo "set_current_time @$SOURCE_DATE_EPOCH"
	(cd "$r" && find . -mindepth 1 -path ./usr/share/payload -prune -o -print) | sort | while read -r p; do
		p=${p#.}
		printf 'sif %s uid 0\nsif %s gid 0\n' "$p" "$p"
	done
	printf 'sif /etc/shadow gid 42\nsif /etc/gshadow gid 42\n'
} >"$cmds"
run_debugfs "$out?offset=$((p2s * 512))" "$cmds"
log "wrote $out"
