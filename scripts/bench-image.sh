#!/usr/bin/env bash
# Benchmark the image pipeline on a 2.5 GiB synthetic base (512 MiB FAT32 + 2 GiB ext4
# holding PAYLOAD as realistic data): prints bake time (partition table, free-space check,
# user, binary, overlay, boot files; no download, no decompression, no compression),
# compression time (xz on all cores, level XZ_LEVEL) and the sizes.
# Usage: scripts/bench-image.sh [PAYLOAD_DIR]   (default /usr/share, about 1.3 GB on Debian)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh"

(($# <= 1)) || {
	echo "usage: ${0##*/} [PAYLOAD_DIR]" >&2
	exit 2
}
payload=${1:-/usr/share}
[[ -d $payload ]] || die "payload directory $payload not found"
root=$(cd "$here/.." && pwd)
: "${XZ_LEVEL:=6}"
export SOURCE_DATE_EPOCH=1700000000
need xz bmaptool

mkdir -p "$root/build"
tmp=$(mktemp -d "$root/build/bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bin=$root/build/target/aarch64-unknown-linux-musl/release/acoupi
if [[ ! -x $bin ]]; then
	bin=$tmp/acoupi
	head -c 3000000 /dev/urandom >"$bin" # the size of the real static binary
	chmod 0755 "$bin"
fi

log "building the 2.5 GiB synthetic base (payload $payload)"
"$here/make-test-base.sh" --root-mib 2048 --payload "$payload" "$tmp/base.img"
seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

t0=$(seconds)
"$here/bake-rootfs.sh" --binary "$bin" --overlay "$root/overlay" --enable "$tmp/base.img"
"$here/bake-boot.sh" --example "$root/image/boot/acoupi.ron.example" --hostname bench "$tmp/base.img"
t1=$(seconds)
bmaptool create -o "$tmp/base.img.bmap" "$tmp/base.img" 2>/dev/null
t2=$(seconds)
xz -T0 "-$XZ_LEVEL" -c "$tmp/base.img" >"$tmp/base.img.xz"
t3=$(seconds)

printf 'bake (no download/decompression/compression): %s s\n' "$(elapsed "$t0" "$t1")"
printf 'bmaptool create: %s s\n' "$(elapsed "$t1" "$t2")"
printf 'xz -T0 -%s (%s cores): %s s\n' "$XZ_LEVEL" "$(nproc)" "$(elapsed "$t2" "$t3")"
printf 'image: %s bytes raw, %s bytes allocated, %s bytes .img.xz\n' \
	"$(stat -c %s "$tmp/base.img")" "$(($(stat -c %b "$tmp/base.img") * 512))" "$(stat -c %s "$tmp/base.img.xz")"
