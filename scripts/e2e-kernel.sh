#!/usr/bin/env bash
# Fetch the Debian arm64 kernel (+ modules) and busybox-static:arm64 for the qemu boot test.
# Usage: scripts/e2e-kernel.sh [OUT_DIR]     (default build/e2e)
# Result (cached): OUT_DIR/kernel/{vmlinuz,release,lib/modules/<release>/ (depmod'ed)},
#                  OUT_DIR/busybox/bin/busybox
set -euo pipefail
PROG=e2e-kernel
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/e2e-lib.sh
. "$here/e2e-lib.sh"
[ $# -le 1 ] || { echo "usage: scripts/e2e-kernel.sh [OUT_DIR]" >&2; exit 2; }
out=$(mkdir -p "${1:-build/e2e}" && cd "${1:-build/e2e}" && pwd)
k=$out/kernel
if [ -f "$k/.done" ] && [ -x "$out/busybox/bin/busybox" ]; then
  log "cached: $k ($(cat "$k/release"))"; exit 0
fi
t0=$(now)
APT_CONFIG=$(private_apt "$out/apt" arm64 "$E2E_SUITE") || die "no private arm64 apt configuration"; export APT_CONFIG
# The metapackage names the current ABI (linux-image-<ver>-arm64); fetch that package itself.
pkg=$(apt-cache depends linux-image-arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || die "cannot resolve linux-image-arm64 to a kernel package in the private apt sources"
rm -rf "$k" "$out/busybox" "$out/debs-kernel"
mkdir -p "$k" "$out/busybox" "$out/debs-kernel"
log "downloading $pkg busybox-static:arm64"
(cd "$out/debs-kernel" && apt-get download -qq "$pkg" busybox-static) || die "apt-get download $pkg busybox-static failed"
dpkg-deb -x "$out"/debs-kernel/linux-image-*.deb "$k/tree"
dpkg-deb -x "$out"/debs-kernel/busybox-static_*.deb "$out/busybox"
[ -x "$out/busybox/bin/busybox" ] || die "busybox-static has no /bin/busybox"
release=$(basename "$(ls -d "$k"/tree/lib/modules/*)")
[ -n "$release" ] || die "$pkg has no /lib/modules/<release>"
cp "$k/tree/boot/vmlinuz-$release" "$k/vmlinuz"
depmod -b "$k/tree" "$release" || die "depmod failed for $release"
printf '%s\n' "$release" > "$k/release"
printf '%s\n' "$pkg" > "$k/package"
touch "$k/.done"
log "kernel $release + busybox ready in $(elapsed "$t0") s"
