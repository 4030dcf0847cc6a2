#!/usr/bin/env bash
# Build a musl C cross compiler wrapper for one Rust target from Debian's musl-dev and
# linux-libc-dev packages, with a private apt configuration (system apt state untouched).
# Usage: scripts/make-sysroot.sh RUST_TARGET OUT_DIR
# Result: OUT_DIR/cc, a complete static musl cross compiler (used for SQLite and alsa-lib).
set -euo pipefail
die() { echo "make-sysroot: $*" >&2; exit 1; }
[ $# -eq 2 ] || { echo "usage: scripts/make-sysroot.sh RUST_TARGET OUT_DIR" >&2; exit 2; }
target=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/targets.sh
. "$here/targets.sh"
target_vars "$target" || die "unknown target $target"
: "${DEBIAN_SUITE:=bookworm}"

mkdir -p "$out/debs"
# shellcheck source=scripts/private-apt.sh
. "$here/private-apt.sh"
# Fresh package lists on every sysroot build: the versions to fetch are today's.
rm -f "$out/apt/apt.conf"
APT_CONFIG=$(private_apt "$out/apt" "$DEB_ARCH" "$DEBIAN_SUITE") || die "no private $DEB_ARCH apt configuration"
export APT_CONFIG
echo "make-sysroot: $target: fetching musl-dev:$DEB_ARCH linux-libc-dev:$DEB_ARCH ($DEBIAN_SUITE)" >&2
(cd "$out/debs" && apt-get download -qq "musl-dev:$DEB_ARCH" "linux-libc-dev:$DEB_ARCH") \
  || die "could not download musl-dev/linux-libc-dev for $DEB_ARCH"
for f in "$out"/debs/*.deb; do dpkg-deb -x "$f" "$out"; done

specs="$out/usr/lib/$MUSL_TRIPLE/musl-gcc.specs"
[ -f "$specs" ] || die "musl-dev for $DEB_ARCH has no $specs"
sed "s#/usr/include/$MUSL_TRIPLE#$out/usr/include/$MUSL_TRIPLE -isystem $out/usr/include/$GNU_TRIPLE -isystem $out/usr/include#g; s#/usr/lib/$MUSL_TRIPLE#$out/usr/lib/$MUSL_TRIPLE#g" \
  "$specs" > "$out/musl-gcc.specs"
printf '#!/bin/sh\nexec %s-gcc -specs=%s/musl-gcc.specs "$@"\n' "$GNU_TRIPLE" "$out" > "$out/cc"
chmod +x "$out/cc"
printf 'int main(void){return 0;}\n' > "$out/probe.c"
"$out/cc" -static -o "$out/probe" "$out/probe.c" || die "the musl cross compiler for $target does not link a static program"
echo "make-sysroot: $target: $out/cc ready" >&2
