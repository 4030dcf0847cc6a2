# Shared by scripts/: the names one Rust target goes by in Debian and GNU toolchains.
# Source it, then call: target_vars RUST_TARGET (sets DEB_ARCH, GNU_TRIPLE, MUSL_TRIPLE).
# shellcheck shell=bash
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
