#!/usr/bin/env bash
# Build a static alsa-lib (libasound.a + alsa.pc + headers) for one target from Debian's
# source of the alsa-lib release that the targeted Raspberry Pi OS ships (bookworm: 1.2.8),
# because the static library parses the target's own /usr/share/alsa/alsa.conf.
# Usage: scripts/build-alsa.sh HOST_TRIPLE OUT_DIR
#   HOST_TRIPLE: GNU triple for configure (aarch64-linux-gnu, arm-linux-gnueabihf)
#   env CC, AR, RANLIB: the musl cross tools (default: $HOST_TRIPLE-gcc/-ar/-ranlib)
#   env ALSA_SRC_DIR: where the source tarball is cached (default: OUT_DIR/..)
#   env ALSA_FETCH_ONLY=1: only fetch and verify the source tarball
# Used by the Makefile (Debian cross gcc + musl sysroot) and by Cross.toml's pre-build.
set -euo pipefail
die() { echo "build-alsa: $*" >&2; exit 1; }
[ $# -eq 2 ] || { echo "usage: scripts/build-alsa.sh HOST_TRIPLE OUT_DIR" >&2; exit 2; }
host=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
: "${ALSA_VERSION:=1.2.8}"
: "${ALSA_SHA256:=1ab01b74e33425ca99c2e36c0844fd6888273193bd898240fe8f93accbcbf347}"
: "${CC:=$host-gcc}" "${AR:=$host-ar}" "${RANLIB:=$host-ranlib}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
: "${ALSA_SRC_DIR:=$(dirname "$out")}"
tarball="$ALSA_SRC_DIR/alsa-lib_${ALSA_VERSION}.orig.tar.bz2"

if ! echo "$ALSA_SHA256  $tarball" | sha256sum -c --quiet - >/dev/null 2>&1; then
  mirror=$("$here/debian-mirror.sh")
  echo "build-alsa: downloading alsa-lib $ALSA_VERSION source from the Debian archive" >&2
  curl -sSfL --retry 3 -o "$tarball.tmp" "$mirror/pool/main/a/alsa-lib/alsa-lib_${ALSA_VERSION}.orig.tar.bz2" \
    || die "could not download alsa-lib_${ALSA_VERSION}.orig.tar.bz2 from $mirror"
  echo "$ALSA_SHA256  $tarball.tmp" | sha256sum -c --quiet - || die "alsa-lib source checksum mismatch"
  mv "$tarball.tmp" "$tarball"
fi

if [ -n "${ALSA_FETCH_ONLY:-}" ]; then
  rmdir "$out" 2>/dev/null || true
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xjf "$tarball" -C "$work"
mkdir "$work/build"
cd "$work/build"
echo "build-alsa: configuring for $host with CC=$CC" >&2
# --prefix=/usr bakes ALSA_CONFIG_DIR=/usr/share/alsa, where Raspberry Pi OS keeps alsa.conf.
# --with-libdl=no: a static musl binary cannot dlopen plugins anyway.
"$work/alsa-lib-$ALSA_VERSION/configure" --host="$host" --prefix=/usr --enable-static --disable-shared \
  --disable-python --with-libdl=no --without-versioned --disable-topology \
  CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS=-O2 > configure.log 2>&1 \
  || { tail -n 20 configure.log >&2; die "configure failed for $host"; }
make -j"$(nproc)" > make.log 2>&1 || { tail -n 20 make.log >&2; die "make failed for $host"; }
rm -rf "$out.tmp"
make install DESTDIR="$out.tmp" > install.log 2>&1 || { tail -n 20 install.log >&2; die "make install failed"; }
rm -rf "$out" && mv "$out.tmp" "$out"
echo "build-alsa: $out/usr/lib/libasound.a ($(stat -c %s "$out/usr/lib/libasound.a") bytes)" >&2
