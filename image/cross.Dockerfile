# Build environment for `cross` (see Cross.toml): the cross-rs musl image plus what
# scripts/build-alsa.sh needs. Cross.toml's pre-build step then builds the static alsa-lib.
ARG CROSS_BASE_IMAGE
FROM $CROSS_BASE_IMAGE
ARG RUST_TARGET
RUN apt-get update && apt-get install -y --no-install-recommends bzip2 make pkg-config ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/build-alsa.sh scripts/debian-mirror.sh /acoupi/scripts/
# Fetched on the host by `make alsa-source` (checksum verified again by build-alsa.sh).
COPY build/alsa-lib_1.2.8.orig.tar.bz2 /acoupi/src/
# pkg-config finds only the static alsa-lib, as in the Makefile route.
ENV PKG_CONFIG_ALLOW_CROSS=1 \
    PKG_CONFIG_LIBDIR=/opt/alsa/usr/lib/pkgconfig \
    PKG_CONFIG_SYSROOT_DIR=/opt/alsa
