#!/usr/bin/env bash
# Bake the acoupi binary, overlay/ and the system user into the ext4 root partition
# (partition 2) of a raw Raspberry Pi OS image with debugfs; no root or loop devices.
# Grows the partition and file system (explicit size) when the payload does not fit.
# Enables acoupi.service and acoupi-beat.service only with --enable; the boot-partition
# import unit is always enabled.
# A --config is inspected with --host-binary (a build of acoupi for this machine): one that
# holds a password or token is baked mode 0600, owned by the acoupi user.
# --model/--labels copy a detection model (and its labels) the user brings into
# /usr/share/acoupi/models/, root-owned and read-only (models carry their own licences:
# never part of the repository, only of the user's image).
# Usage: scripts/bake-rootfs.sh --binary FILE --overlay DIR [--config FILE --host-binary FILE]
#          [--model FILE [--labels FILE]] [--enable] [--min-free-mib N] IMAGE
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: ${0##*/} --binary FILE --overlay DIR [--config FILE --host-binary FILE] [--model FILE [--labels FILE]] [--enable] [--min-free-mib N] IMAGE" >&2
	exit 2
}
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
binary='' host_binary='' overlay='' config='' model='' labels='' enable=no min_free_mib=32 img=''
while (($#)); do
	# Every option but the flags takes a value.
	case $1 in --enable | -h | --help) ;; --*) (($# >= 2)) || usage ;; esac
	case $1 in
	--binary) binary=${2:-} && shift 2 ;;
	--overlay) overlay=${2:-} && shift 2 ;;
	--config) config=${2:-} && shift 2 ;;
	--host-binary) host_binary=${2:-} && shift 2 ;;
	--model) model=${2:-} && shift 2 ;;
	--labels) labels=${2:-} && shift 2 ;;
	--enable) enable=yes && shift ;;
	--min-free-mib) min_free_mib=${2:-} && shift 2 ;;
	-*) usage ;;
	*) [[ -z $img ]] || usage; img=$1 && shift ;;
	esac
done
[[ -n $img && -n $binary && -n $overlay && $min_free_mib =~ ^[0-9]+$ ]] || usage
[[ -z $config || -n $host_binary ]] || usage
[[ -f $img ]] || die "image $img not found"
[[ -x $binary ]] || die "binary $binary not found or not executable; run make build or set BINARY"
[[ -d $overlay ]] || die "overlay directory $overlay not found"
[[ -z $config || -f $config ]] || die "configuration $config not found"
[[ -z $labels || -n $model ]] || usage
for f in "$model" "$labels"; do
	[[ -z $f || -f $f ]] || die "detection file $f not found"
done
need sfdisk jq debugfs dumpe2fs e2fsck resize2fs systemd-sysusers sha256sum
secrets=false
if [[ -n $config ]]; then
	secrets=$(inspect_config "$host_binary" "$config" | jq -r .holds_secrets)
fi
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- where the root file system is -------------------------------------------------------
nparts=$(part_count "$img")
((nparts >= 2)) || die "$img has no root partition (found $nparts partitions; Raspberry Pi OS has bootfs and rootfs)"
ss=$(sector_size "$img")
start=$(part_field "$img" 2 start)
type=$(part_field "$img" 2 type)
[[ $type == 83 ]] || die "partition 2 of $img has type $type, not a Linux (83) root partition"
off=$((start * ss))
spec="$img?offset=$off"
sb=$tmp/superblock
dumpe2fs -h "$spec" >"$sb" 2>/dev/null || die "partition 2 of $img holds no ext4 file system"
grep -q '^Filesystem features:.*extent' "$sb" || die "partition 2 of $img is ext2/ext3, not ext4"

sbval() { awk -F: -v k="$1" '$1 == k { gsub(/ /, "", $2); print $2 }' "$sb"; }

# --- free space: grow when the payload does not fit --------------------------------------
payload=$(du -sb --apparent-size "$overlay" "$binary" ${config:+"$config"} ${model:+"$model"} ${labels:+"$labels"} | awk '{ s += $1 } END { print s }')
need_bytes=$((payload + min_free_mib * 1048576))
bs=$(sbval 'Block size')
free_bytes=$((($(sbval 'Free blocks') - $(sbval 'Reserved block count')) * bs))
if ((free_bytes < need_bytes)); then
	short_mib=$(((need_bytes - free_bytes + 1048575) / 1048576))
	if ((nparts > 2)); then
		die "root file system of $img has $((free_bytes / 1048576)) MiB free, the bake needs $((need_bytes / 1048576)) MiB, and it cannot grow because partition 3 follows it; free space in the base image or use another base"
	fi
	grow_mib=$((short_mib + 64))
	log "root file system has $((free_bytes / 1048576)) MiB free; growing it by $grow_mib MiB"
	truncate -s "+${grow_mib}M" "$img"
	echo ', +' | sfdisk -q -N 2 --no-reread --no-tell-kernel "$img" >/dev/null 2>&1 ||
		die "growing partition 2 of $img with sfdisk failed"
	size=$(part_field "$img" 2 size)
	# resize2fs on "$img?offset=…" writes the new groups' bitmaps where debugfs cannot
	# read them when the file system grows several times over (seen growing 24 to 132
	# MiB): resize a copy of the partition on its own, then write it back whole.
	part=$tmp/rootfs.ext4
	dd if="$img" of="$part" iflag=skip_bytes,count_bytes skip="$off" count=$((size * ss)) bs=1M conv=sparse status=none ||
		die "copying partition 2 of $img out to resize it failed"
	truncate -s $((size * ss)) "$part"
	e2fsck -fy "$part" >"$tmp/fsck.log" 2>&1 || (($? < 4)) || die "e2fsck before resizing failed: $(cat "$tmp/fsck.log")"
	resize2fs "$part" >"$tmp/resize.log" 2>&1 || die "resize2fs failed: $(cat "$tmp/resize.log")"
	dd if="$part" of="$img" oflag=seek_bytes seek="$off" bs=1M conv=notrunc status=none ||
		die "writing the resized partition 2 back into $img failed"
	rm -f "$part"
	dumpe2fs -h "$spec" >"$sb" 2>/dev/null
	free_bytes=$((($(sbval 'Free blocks') - $(sbval 'Reserved block count')) * bs))
	((free_bytes >= need_bytes)) || die "root file system still too small after growing ($((free_bytes / 1048576)) MiB free)"
fi

# --- the system user, created now (see acoupi.service for why not at boot) ----------------
# systemd-sysusers --root does the allocation exactly as it would on the device; the four
# account files are copied out, updated and written back with their owners and modes.
mkdir -p "$tmp/root/etc"
accounts=(passwd group shadow gshadow)
for f in "${accounts[@]}"; do
	debugfs -R "dump /etc/$f $tmp/root/etc/$f" "$spec" 2>/dev/null
	[[ -s $tmp/root/etc/$f ]] || die "/etc/$f is missing from the root file system of $img"
	cp "$tmp/root/etc/$f" "$tmp/orig-$f"
done
systemd-sysusers --root="$tmp/root" "$(realpath "$overlay")/usr/lib/sysusers.d/acoupi.conf" 2>"$tmp/sysusers.log" ||
	die "creating the acoupi user failed: $(cat "$tmp/sysusers.log")"
if [[ -n $(cat "$tmp/sysusers.log") ]]; then log "$(cat "$tmp/sysusers.log")"; fi
# sysusers stamps "last password change" with today; pin it for reproducible bytes.
sed -i -E "s/^(acoupi:[^:]*:)[0-9]*:/\1$((SOURCE_DATE_EPOCH / 86400)):/" "$tmp/root/etc/shadow"

# --- one debugfs batch ---------------------------------------------------------------------
cmds=$tmp/cmds
# file SRC DEST MODE: replace DEST with SRC, root-owned.
file() { printf 'rm %s\nwrite %s %s\nsif %s mode %s\nsif %s uid 0\nsif %s gid 0\n' "$2" "$1" "$2" "$2" "$3" "$2" "$2"; }
# inode_meta PATH: "mode uid gid" of an existing inode, to restore after replacing it.
inode_meta() {
	debugfs -R "stat $1" "$spec" 2>/dev/null |
		awk '/Mode:/ { for (i = 1; i <= NF; i++) if ($i == "Mode:") m = $(i + 1) }
		     /^User:/ { u = $2; g = $4 } END { print m, u, g }'
}
{
	# Every inode written in this batch gets SOURCE_DATE_EPOCH as its times.
	echo "set_current_time @$SOURCE_DATE_EPOCH"
	(cd "$overlay" && find . -mindepth 1 -type d | sort) | while read -r d; do
		d=${d#.}
		mkdir_missing "$spec" "$d"
		printf 'sif %s mode 040755\nsif %s uid 0\nsif %s gid 0\n' "$d" "$d" "$d"
	done
	(cd "$overlay" && find . -type f | sort) | while read -r f; do
		file "$overlay/${f#./}" "${f#.}" 0100644
	done
	file "$binary" /usr/bin/acoupi 0100755
	if [[ -n $config ]]; then file "$config" /etc/acoupi/acoupi.ron 0100644; fi
	if [[ -n $model ]]; then
		for d in /usr/share/acoupi /usr/share/acoupi/models; do
			mkdir_missing "$spec" "$d"
			printf 'sif %s mode 040755\nsif %s uid 0\nsif %s gid 0\n' "$d" "$d" "$d"
		done
		for f in "$model" "$labels"; do
			[[ -z $f ]] || file "$f" "/usr/share/acoupi/models/${f##*/}" 0100644
		done
	fi
	# A configuration holding a password or token is for the service user's eyes only,
	# as `acoupi config set` leaves it on the device (mode 0600, owned by acoupi). The
	# binary says so (raw strings, line breaks, comments: the real parser's answer).
	if [[ $secrets == true ]]; then
		read -r acoupi_uid acoupi_gid < <(awk -F: '$1 == "acoupi" { print $3, $4 }' "$tmp/root/etc/passwd")
		printf 'sif %s mode 0100600\nsif %s uid %s\nsif %s gid %s\n' /etc/acoupi/acoupi.ron \
			/etc/acoupi/acoupi.ron "$acoupi_uid" /etc/acoupi/acoupi.ron "$acoupi_gid"
	fi
	for f in "${accounts[@]}"; do
		cmp -s "$tmp/orig-$f" "$tmp/root/etc/$f" && continue
		read -r mode uid gid < <(inode_meta "/etc/$f")
		printf 'rm /etc/%s\nwrite %s /etc/%s\nsif /etc/%s mode 0100%s\nsif /etc/%s uid %s\nsif /etc/%s gid %s\n' \
			"$f" "$tmp/root/etc/$f" "$f" "$f" "${mode#0}" "$f" "$uid" "$f" "$gid"
	done
	wants=/etc/systemd/system/multi-user.target.wants
	mkdir_missing "$spec" "$wants"
	units=(acoupi-boot-import.service)
	[[ $enable == no ]] || units+=(acoupi.service acoupi-beat.service)
	for u in "${units[@]}"; do
		printf 'rm %s/%s\nsymlink %s/%s /usr/lib/systemd/system/%s\n' "$wants" "$u" "$wants" "$u" "$u"
	done
} >"$cmds"
log "writing binary, overlay and user into $img (partition 2 at byte $off)"
run_debugfs "$spec" "$cmds"

e2fsck -fn "$spec" >"$tmp/check.log" 2>&1 || die "root file system is not clean after baking: $(cat "$tmp/check.log")"
log "root file system baked and clean (services enabled: $enable)"
