#!/usr/bin/env bash
# Turn a baked raw image into release files and move them into DIST only when all exist:
# NAME.img.xz (xz, all cores), NAME.img.bmap, NAME.manifest.json (INFO plus the image
# digests) and SHA256SUMS. A failure leaves DIST as it was.
# Usage: scripts/package-image.sh --dist DIR --name NAME --info FILE.json IMAGE
# Environment: XZ_LEVEL (0-9, default 6; tests use 0).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: ${0##*/} --dist DIR --name NAME --info FILE.json IMAGE" >&2
	exit 2
}
dist='' name='' info='' img=''
while (($#)); do
	# Every option but the flags takes a value.
	case $1 in -h | --help) ;; --*) (($# >= 2)) || usage ;; esac
	case $1 in
	--dist) dist=${2:-} && shift 2 ;;
	--name) name=${2:-} && shift 2 ;;
	--info) info=${2:-} && shift 2 ;;
	-*) usage ;;
	*) [[ -z $img ]] || usage; img=$1 && shift ;;
	esac
done
[[ -n $dist && -n $name && -n $info && -n $img ]] || usage
[[ -f $img ]] || die "image $img not found"
jq -e . "$info" >/dev/null 2>&1 || die "$info is not JSON"
need xz bmaptool jq sha256sum

# Staged next to the image (same file system as build/), moved to DIST at the very end.
stage=$(mktemp -d "$(dirname "$img")/package.XXXXXX")
trap 'rm -rf "$stage"' EXIT

log "creating block map"
bmaptool create -o "$stage/$name.img.bmap" "$img" 2>/dev/null || die "bmaptool create failed on $img"
log "compressing $img with xz on all cores"
xz -T0 "-${XZ_LEVEL:-6}" -v -c "$img" >"$stage/$name.img.xz" || die "xz failed on $img"

jq --arg img "$(sha256sum "$img" | cut -d' ' -f1)" \
	--arg xz "$(sha256sum "$stage/$name.img.xz" | cut -d' ' -f1)" \
	--argjson size "$(stat -c %s "$img")" --arg name "$name" \
	'. + {image: {file: ($name + ".img.xz"), raw_sha256: $img, raw_size: $size, xz_sha256: $xz}}' \
	"$info" >"$stage/$name.manifest.json"
# SHA256SUMS covers every image in DIST (both arches): keep the other images' lines.
{
	if [[ -f $dist/SHA256SUMS ]]; then
		awk -v n="$name." 'index($2, n) != 1' "$dist/SHA256SUMS"
	fi
	(cd "$stage" && sha256sum "$name.img.xz" "$name.img.bmap" "$name.manifest.json")
} | sort -k2 >"$stage/SHA256SUMS"

mkdir -p "$dist"
# SHA256SUMS last: its presence says the other three are complete.
for f in "$name.img.xz" "$name.img.bmap" "$name.manifest.json" SHA256SUMS; do
	mv -f "$stage/$f" "$dist/$f"
done
log "wrote $dist/$name.img.xz ($(stat -c %s "$dist/$name.img.xz") bytes), .img.bmap, .manifest.json, SHA256SUMS"
