#!/usr/bin/env bash
# Resolve, download (resumable) and verify a base image; print its local path on stdout.
# BASE is a local .img or .img.xz, an http(s) URL, or empty for the pinned Raspberry Pi OS
# Lite of ARCH (image/base-images.tsv). Downloads are cached in CACHE_DIR and verified
# before every use; a URL other than the pinned one needs SHA256.
# Usage: scripts/fetch-base.sh ARCH [BASE [SHA256]]
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: ${0##*/} ARCH [BASE [SHA256]]   (ARCH: arm64 or armhf)" >&2
	exit 2
}
(($# >= 1 && $# <= 3)) || usage
arch=$1 base=${2:-} want=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
: "${PINS:=$root/image/base-images.tsv}"
: "${CACHE_DIR:=$root/build/cache}"
case $arch in arm64 | armhf) ;; *) die "unknown ARCH '$arch'; use arm64 or armhf" ;; esac
need sha256sum curl

# verify FILE SHA256: fail loudly on a mismatch (a wrong or corrupted base is never baked).
verify() {
	local got
	log "verifying $1"
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[[ $got == "$2" ]] ||
		die "checksum mismatch for $1: expected $2, got $got; delete the file or fix BASE_SHA256"
}

if [[ -z $base ]]; then
	line=$(awk -v a="$arch" '$1 == a { print $2, $3; exit }' "$PINS")
	[[ -n $line ]] || die "no pinned base image for $arch in $PINS"
	read -r base pinned <<<"$line"
	[[ -z $want || $want == "$pinned" ]] || die "SHA256 given for the pinned $arch base differs from $PINS"
	want=$pinned
fi
[[ -z $want || $want =~ ^[0-9a-f]{64}$ ]] || die "BASE_SHA256 '$want' is not a SHA-256 (64 hex digits)"

case $base in
http://* | https://*)
	[[ -n $want ]] || die "base image URL $base needs BASE_SHA256 (64 hex digits) to be verified"
	mkdir -p "$CACHE_DIR"
	file=$CACHE_DIR/${base##*/}
	if [[ ! -f $file ]]; then
		log "downloading $base"
		# -C -: resume a .part left by an interrupted download.
		curl -fL --retry 3 -C - -o "$file.part" "$base" || die "downloading $base failed (rerun to resume)"
		verify "$file.part" "$want"
		mv "$file.part" "$file"
	else
		verify "$file" "$want"
	fi
	;;
*)
	file=$base
	[[ -f $file ]] || die "base image $file not found; give a path, a URL, or nothing for the pinned image"
	if [[ -n $want ]]; then verify "$file" "$want"; fi
	;;
esac
printf '%s\n' "$file"
