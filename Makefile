# The lead's part of the Makefile (help, deps, build, test, lint, …) goes above this line;
# this branch carries only the image section, so it sets what its recipes need itself.
SHELL := bash

# --- image (owned by image pipeline) ---
# make image ARCH=arm64|armhf [BASE_IMAGE=path-or-url [BASE_SHA256=…]] [CONFIG=site.ron]
#   [SSH_PUBKEY=key-or-file] [HOSTNAME=…] [WIFI_SSID=… WIFI_PSK=… WIFI_COUNTRY=GB]
#   [TIMEZONE=Europe/London] [BINARY=path] [VERSION=…]
ARCH ?= arm64
BASE_IMAGE ?=
BASE_SHA256 ?=
CONFIG ?=
SSH_PUBKEY ?=
WIFI_SSID ?=
WIFI_PSK ?=
WIFI_COUNTRY ?=
TIMEZONE ?=
BINARY ?=
VERSION ?=
DIST ?= $(CURDIR)/dist
# HOSTNAME only from the command line: the environment's HOSTNAME names the build machine.
IMAGE_HOSTNAME := $(if $(filter command line,$(origin HOSTNAME)),$(HOSTNAME))
# Single-quoted for the shell, so spaces or quotes in a Wi-Fi passphrase cannot break the
# recipe (make itself expands `$`: write it `$$` on the command line).
image_q = '$(subst ','\'',$(1))'

.PHONY: image test-image bench-image lint-image
image: ## Bake dist/acoupi-<version>-<arch>.img.xz (+ .img.bmap, .manifest.json, SHA256SUMS)
	scripts/build-image.sh --arch $(call image_q,$(ARCH)) --base $(call image_q,$(BASE_IMAGE)) \
	  --base-sha256 $(call image_q,$(BASE_SHA256)) --config $(call image_q,$(CONFIG)) \
	  --binary $(call image_q,$(BINARY)) --version $(call image_q,$(VERSION)) --dist $(call image_q,$(DIST)) \
	  --hostname $(call image_q,$(IMAGE_HOSTNAME)) --ssh-pubkey $(call image_q,$(SSH_PUBKEY)) \
	  --timezone $(call image_q,$(TIMEZONE)) --wifi-ssid $(call image_q,$(WIFI_SSID)) \
	  --wifi-psk $(call image_q,$(WIFI_PSK)) --wifi-country $(call image_q,$(WIFI_COUNTRY))

test-image: ## Image pipeline tests: unit files, bake, read-back, bad inputs
	cargo test --test image_units --test image_bake

bench-image: ## Bake and compression time on a 2.5 GiB synthetic base
	scripts/bench-image.sh

lint-image: ## shellcheck the image scripts, actionlint the release workflow
	shellcheck -x scripts/*.sh
	scripts/lint-workflows.sh
