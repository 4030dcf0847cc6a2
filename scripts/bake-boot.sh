#!/usr/bin/env bash
# Write the acoupi files and the cloud-init NoCloud seed into the FAT boot partition
# (partition 1) of a raw Raspberry Pi OS image with mtools; no root or loop devices.
#
# - acoupi.ron: the site configuration (--config), imported at every boot by
#   acoupi-boot-import.service; without --config only acoupi.ron.example is written, so
#   nothing is imported until the user renames it.
# - user-data, meta-data, network-config (cloud-init NoCloud): hostname, an SSH key for the
#   login user ADMIN_USER (key only, password locked: there is no default password), Wi-Fi,
#   time zone. Raspberry Pi OS Trixie applies them at first boot. Bookworm has no
#   cloud-init: the files are then ignored (a warning says so), and only the empty `ssh`
#   file (SSH server on) still takes effect.
# Usage: scripts/bake-boot.sh --example FILE [--config FILE] [--hostname NAME]
#          [--ssh-pubkey KEY|FILE] [--admin-user NAME] [--wifi-ssid SSID --wifi-psk PSK
#          --wifi-country CC] [--timezone ZONE] [--codename NAME] IMAGE
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: ${0##*/} --example FILE [--config FILE] [--hostname NAME] [--ssh-pubkey KEY|FILE] [--admin-user NAME] [--wifi-ssid SSID --wifi-psk PSK --wifi-country CC] [--timezone ZONE] [--codename NAME] IMAGE" >&2
	exit 2
}
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
example='' config='' host='' key='' admin=acoupi-admin ssid='' psk='' country='' tz='' codename='' img=''
while (($#)); do
	# Every option but the flags takes a value.
	case $1 in -h | --help) ;; --*) (($# >= 2)) || usage ;; esac
	case $1 in
	--example) example=${2:-} && shift 2 ;;
	--config) config=${2:-} && shift 2 ;;
	--hostname) host=${2:-} && shift 2 ;;
	--ssh-pubkey) key=${2:-} && shift 2 ;;
	--admin-user) admin=${2:-} && shift 2 ;;
	--wifi-ssid) ssid=${2:-} && shift 2 ;;
	--wifi-psk) psk=${2:-} && shift 2 ;;
	--wifi-country) country=${2:-} && shift 2 ;;
	--timezone) tz=${2:-} && shift 2 ;;
	--codename) codename=${2:-} && shift 2 ;;
	-*) usage ;;
	*) [[ -z $img ]] || usage; img=$1 && shift ;;
	esac
done
[[ -n $img && -n $example ]] || usage
[[ -f $img ]] || die "image $img not found"
[[ -f $example ]] || die "example configuration $example not found"
[[ -z $config || -f $config ]] || die "configuration $config not found"
need sfdisk jq mcopy
export MTOOLS_SKIP_CHECK=1

# Checks on what would otherwise fail silently on the device.
if [[ -n $host && ! $host =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]]; then
	die "HOSTNAME '$host' is not a valid host name (letters, digits, inner hyphens, at most 63)"
fi
if [[ -n $key && -f $key ]]; then key=$(<"$key"); fi
if [[ -n $key && ! $key =~ ^(ssh-|ecdsa-|sk-) ]]; then
	die "SSH_PUBKEY is neither an OpenSSH public key nor a file holding one"
fi
[[ $admin =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "admin user '$admin' is not a valid user name"
if [[ -n $ssid || -n $psk || -n $country ]]; then
	[[ -n $ssid && -n $psk && -n $country ]] || die "Wi-Fi needs WIFI_SSID, WIFI_PSK and WIFI_COUNTRY together"
	[[ $country =~ ^[A-Z]{2}$ ]] || die "WIFI_COUNTRY '$country' is not a two-letter country code (e.g. GB)"
	((${#psk} >= 8 && ${#psk} <= 63)) || [[ $psk =~ ^[0-9a-fA-F]{64}$ ]] ||
		die "WIFI_PSK must be 8 to 63 characters (or 64 hex digits)"
fi
[[ -z $tz || $tz =~ ^[A-Za-z_+-]+(/[A-Za-z0-9_+-]+)*$ ]] || die "TIMEZONE '$tz' is not an IANA time zone name"

(($(part_count "$img") >= 1)) || die "$img has no partition table"
case $(part_field "$img" 1 type) in
b | c | e) ;;
*) die "partition 1 of $img is not a FAT boot partition" ;;
esac
fat="$img@@$(($(part_field "$img" 1 start) * $(sector_size "$img")))"
mdir -i "$fat" ::/ >/dev/null 2>&1 || die "partition 1 of $img holds no FAT file system"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/boot
mkdir -p "$out"
cp "$example" "$out/acoupi.ron.example"
if [[ -n $config ]]; then cp "$config" "$out/acoupi.ron"; fi

# YAML strings are written as JSON strings (valid YAML), so no value can break the file.
q() { jq -Rn --arg v "$1" '$v'; }
if [[ -n $host || -n $key || -n $ssid || -n $tz ]]; then
	if [[ $codename == bookworm ]]; then
		warn "base is Bookworm: it has no cloud-init, so HOSTNAME, SSH_PUBKEY, WIFI_* and TIMEZONE in user-data/network-config are ignored there; use a Trixie base or Raspberry Pi Imager's settings"
	fi
	{
		echo '#cloud-config'
		if [[ -n $host ]]; then printf 'hostname: %s\nmanage_etc_hosts: true\n' "$(q "$host")"; fi
		if [[ -n $tz ]]; then printf 'timezone: %s\n' "$(q "$tz")"; fi
		if [[ -n $key ]]; then
			printf 'ssh_pwauth: false\nusers:\n  - name: %s\n' "$(q "$admin")"
			printf '    groups: [adm, audio, sudo, systemd-journal]\n    shell: /bin/bash\n'
			printf '    lock_passwd: true\n    sudo: "ALL=(ALL) NOPASSWD:ALL"\n'
			printf '    ssh_authorized_keys:\n      - %s\n' "$(q "$key")"
		fi
	} >"$out/user-data"
	# A stable instance id: cloud-init re-runs only when these settings change.
	printf 'instance-id: acoupi-%s\n' "$(sha256sum "$out/user-data" | cut -c1-16)" >"$out/meta-data"
	if [[ -n $ssid ]]; then
		{
			printf 'network:\n  version: 2\n  wifis:\n    wlan0:\n      dhcp4: true\n      optional: true\n'
			printf '      regulatory-domain: %s\n      access-points:\n' "$(q "$country")"
			printf '        %s:\n          password: %s\n' "$(q "$ssid")" "$(q "$psk")"
		} >"$out/network-config"
	fi
	# Pi OS turns the SSH server on at boot when a file named `ssh` is on this partition.
	if [[ -n $key ]]; then : >"$out/ssh"; fi
fi

find "$out" -exec touch -d "@$SOURCE_DATE_EPOCH" {} +
log "writing $(cd "$out" && echo *) to the boot partition of $img"
# -o: overwrite (a Trixie base ships its own user-data/meta-data/network-config); -m keeps
# the pinned modification time.
mcopy -o -m -i "$fat" "$out"/* ::/ || die "writing to the boot partition of $img failed (full?)"
