# shellcheck shell=bash
# Shared by scripts/ and the Makefile: the one map from a Rust target to the names it
# goes by in Debian (DEB_ARCH, the image's --arch) and the GNU and musl toolchains.
# Sourced, never run.
#   target_vars RUST_TARGET   sets and exports DEB_ARCH, GNU_TRIPLE, MUSL_TRIPLE
#   target_of_arch DEB_ARCH   prints the Rust target for a Debian architecture
#   ACOUPI_TARGETS            every target we ship, space-separated

ACOUPI_TARGETS="aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf"

target_vars() {
  case "$1" in
    aarch64-unknown-linux-musl)
      DEB_ARCH=arm64 GNU_TRIPLE=aarch64-linux-gnu MUSL_TRIPLE=aarch64-linux-musl ;;
    armv7-unknown-linux-musleabihf)
      DEB_ARCH=armhf GNU_TRIPLE=arm-linux-gnueabihf MUSL_TRIPLE=arm-linux-musleabihf ;;
    *) return 1 ;;
  esac
  export DEB_ARCH GNU_TRIPLE MUSL_TRIPLE
}

target_of_arch() {
  local t
  for t in $ACOUPI_TARGETS; do
    if (target_vars "$t" && [ "$DEB_ARCH" = "$1" ]); then
      printf '%s\n' "$t"
      return 0
    fi
  done
  return 1
}
