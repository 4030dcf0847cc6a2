#!/usr/bin/env bash
# Build a flashable acoupi image: fetch and verify the base, decompress it into a work
# directory under BUILD_DIR, bake the root and boot partitions, then package into DIST.
# Nothing reaches DIST unless every step succeeded. The steps are the other scripts here.
# Usage: scripts/build-image.sh --arch arm64|armhf [--base PATH|URL] [--base-sha256 SUM]
#          [--config FILE [--model FILE [--labels FILE]]] [--binary FILE] [--host-binary FILE] [--hostname NAME] [--ssh-pubkey KEY|FILE]
#          [--wifi-ssid SSID --wifi-psk PSK --wifi-country CC] [--timezone ZONE]
#          [--version V] [--dist DIR] [--build-dir DIR]
# --binary is the Pi's (static musl) binary baked into the image; --host-binary is a build
# of acoupi for THIS machine, which answers for --config (`acoupi config inspect --json`:
# valid? deployment? secrets? detection model?) so no script re-implements the RON grammar.
# --model/--labels copy the user's detection model into /usr/share/acoupi/models/; the
# configuration's detection.model_file (and labels_file) must name it there, so an image
# never runs another model than the one baked, nor points at one that is not in it.
# Environment: SOURCE_DATE_EPOCH (default: the commit time), ACOUPI_HOST (default of
# --host-binary; else $CARGO_TARGET_DIR/release/acoupi, which `make build` builds).
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh"

usage() {
	echo "usage: ${0##*/} --arch arm64|armhf [--base PATH|URL] [--base-sha256 SUM] [--config FILE [--model FILE [--labels FILE]]] [--binary FILE] [--host-binary FILE] [--hostname NAME] [--ssh-pubkey KEY|FILE] [--wifi-ssid SSID --wifi-psk PSK --wifi-country CC] [--timezone ZONE] [--version V] [--dist DIR] [--build-dir DIR]" >&2
	exit 2
}
root=$(cd "$here/.." && pwd)
arch='' base='' base_sha='' config='' model='' labels='' binary='' host_binary=${ACOUPI_HOST:-} version='' dist=$root/dist build=$root/build
boot_args=()
while (($#)); do
	# Every option but the flags takes a value.
	case $1 in -h | --help) ;; --*) (($# >= 2)) || usage ;; esac
	case $1 in
	--arch) arch=${2:-} && shift 2 ;;
	--base) base=${2:-} && shift 2 ;;
	--base-sha256) base_sha=${2:-} && shift 2 ;;
	--config) config=${2:-} && shift 2 ;;
	--model) model=${2:-} && shift 2 ;;
	--labels) labels=${2:-} && shift 2 ;;
	--binary) binary=${2:-} && shift 2 ;;
	--host-binary) host_binary=${2:-} && shift 2 ;;
	--version) version=${2:-} && shift 2 ;;
	--dist) dist=${2:-} && shift 2 ;;
	--build-dir) build=${2:-} && shift 2 ;;
	--hostname | --ssh-pubkey | --wifi-ssid | --wifi-psk | --wifi-country | --timezone)
		(($# >= 2)) || usage
		[[ -z $2 ]] || boot_args+=("$1" "$2")
		shift 2
		;;
	*) usage ;;
	esac
done
[[ -n $arch ]] || usage
# shellcheck source=targets.sh source-path=SCRIPTDIR
source "$here/targets.sh"
triple=$(target_of_arch "$arch") || {
	echo "${0##*/}: error: unknown ARCH '$arch'; use arm64 or armhf" >&2
	exit 2
}
: "${dist:=$root/dist}" "${build:=$root/build}"
: "${binary:=$build/target/$triple/release/acoupi}"
[[ -x $binary ]] || die "binary $binary not found or not executable; run make build or set BINARY"
[[ -z $config || -f $config ]] || die "configuration $config not found"
if [[ -z $version ]]; then
	version=$(awk -F'"' '/^version *=/ { print $2; exit }' "$root/Cargo.toml")
fi
rev=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev=$rev-dirty; fi
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
need xz jq sha256sum debugfs

enable=()
models=/usr/share/acoupi/models
[[ -n $config || -z $model ]] || die "MODEL=$model needs a CONFIG= whose detection.model_file is $models/${model##*/}"
[[ -z $labels || -n $model ]] || die "LABELS=$labels needs MODEL= too"
for f in "$model" "$labels"; do
	[[ -z $f || -f $f ]] || die "detection file $f not found"
	[[ ${f##*/} != *[[:space:]]* ]] || die "detection file name '${f##*/}' has a space; rename it (it is baked as $models/<name>)"
done
if [[ -n $config ]]; then
	: "${host_binary:=${CARGO_TARGET_DIR:-$build/target}/release/acoupi}"
	log "inspecting $config with $host_binary"
	report=$(inspect_config "$host_binary" "$config")
	if [[ $(jq -r .has_deployment <<<"$report") == true ]]; then enable=(--enable); fi
	# The configuration and MODEL=/LABELS= must agree on what is baked.
	for pair in "model_file:$model" "labels_file:$labels"; do
		field=${pair%%:*} given=${pair#*:}
		named=$(jq -r ".detection_$field // empty" <<<"$report")
		if [[ -n $given && $named != "$models/${given##*/}" ]]; then
			die "$config: detection.$field is ${named:-not set}, but ${given} is baked as $models/${given##*/}; set detection.$field to \"$models/${given##*/}\""
		elif [[ -z $given && $named == "$models/"* ]]; then
			die "$config: detection.$field is $named, in the image's model folder, but nothing is baked there; pass the file: make image ... $([[ $field == model_file ]] && echo MODEL || echo LABELS)=/path/to/${named##*/}"
		fi
	done
fi

base_file=$("$here/fetch-base.sh" "$arch" "$base" "$base_sha")
base_sha256=${base_sha:-$(sha256sum "$base_file" | cut -d' ' -f1)}

mkdir -p "$build"
work=$(mktemp -d "$build/image-$arch.XXXXXX")
trap 'rm -rf "$work"' EXIT
name=acoupi-$version-$arch
img=$work/$name.img
case $base_file in
*.xz)
	log "decompressing $base_file"
	xz -d -c -T0 -v "$base_file" | dd of="$img" bs=1M conv=sparse status=none ||
		die "decompressing $base_file failed"
	;;
*) cp --sparse=always "$base_file" "$img" ;;
esac

t0=$(date +%s.%N)
"$here/bake-rootfs.sh" --binary "$binary" --overlay "$root/overlay" \
	${config:+--config "$config" --host-binary "$host_binary"} \
	${model:+--model "$model"} ${labels:+--labels "$labels"} "${enable[@]}" "$img"
start=$(part_field "$img" 2 start)
codename=$(debugfs -R 'cat /etc/os-release' "$img?offset=$((start * $(sector_size "$img")))" 2>/dev/null |
	awk -F= '$1 == "VERSION_CODENAME" { gsub(/"/, "", $2); print $2 }')
"$here/bake-boot.sh" --example "$root/image/boot/acoupi.ron.example" ${config:+--config "$config"} \
	--codename "${codename:-unknown}" "${boot_args[@]}" "$img"
t1=$(date +%s.%N)
log "baked in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"

config_digest=$(sha256sum "${config:-$root/overlay/etc/acoupi/acoupi.ron}" | cut -d' ' -f1)
jq -n --arg version "$version" --arg rev "$rev" --arg arch "$arch" --arg triple "$triple" \
	--arg base "${base:-$(awk -v a="$arch" '$1 == a { print $2; exit }' "$root/image/base-images.tsv")}" \
	--arg base_sha "$base_sha256" --arg codename "${codename:-unknown}" \
	--arg bin_sha "$(sha256sum "$binary" | cut -d' ' -f1)" \
	--arg cfg "$config_digest" --arg cfg_src "${config:+site}" \
	--arg model "${model:+$models/${model##*/}}" --arg model_sha "${model:+$(sha256sum "$model" | cut -d' ' -f1)}" \
	--argjson sde "$SOURCE_DATE_EPOCH" --argjson enabled "$([[ ${#enable[@]} -gt 0 ]] && echo true || echo false)" \
	'{version: $version, git_revision: $rev, arch: $arch, target: $triple,
	  base_image: {source: $base, sha256: $base_sha, codename: $codename},
	  binary_sha256: $bin_sha,
	  config: {source: (if $cfg_src == "site" then "site" else "default" end), sha256: $cfg},
	  detection_model: (if $model == "" then null else {path: $model, sha256: $model_sha} end),
	  services_enabled: $enabled, source_date_epoch: $sde}' >"$work/info.json"
"$here/package-image.sh" --dist "$dist" --name "$name" --info "$work/info.json" "$img"
