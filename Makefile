# The lead's part of the Makefile (help, deps, build, test, …) and the image section go above
# this line; this branch carries only the e2e section, so it sets what its recipes need itself.
SHELL := bash

# --- e2e (owned by e2e harness) ---
# make e2e          base (cached) → make image (BASE_IMAGE=base.img, CONFIG=E2E_CONFIG) →
#                   test extras into a copy → two qemu boots → checks → report; non-zero on FAIL
# make e2e-standin  the same boot path without acoupi: kernel, systemd, snd-aloop signal path
# make e2e-base     only the Raspberry Pi OS Lite stand-in (build/e2e/base.img)
# Host packages: debootstrap qemu-system-arm e2fsprogs fdisk dosfstools mtools cpio kmod xz-utils python3
E2E_DIR ?= $(CURDIR)/build/e2e
E2E_CONFIG ?= $(CURDIR)/scripts/e2e-site.ron

.PHONY: e2e e2e-base e2e-standin lint-e2e
e2e-base: ## Debian arm64 stand-in for Raspberry Pi OS Lite (cached in build/e2e)
	scripts/e2e-base.sh '$(E2E_DIR)'

e2e-standin: e2e-base ## Boot the base image and prove the loopback signal path (no acoupi)
	scripts/e2e-run.sh --standin --out '$(E2E_DIR)'

# XZ_LEVEL=0 for the bake: e2e checks what is baked, not the compression ratio (-6 costs minutes).
e2e: e2e-base ## Bake an image with the e2e site config, boot it twice under qemu, check from outside
	rm -rf '$(E2E_DIR)/dist'
	XZ_LEVEL=0 $(MAKE) image ARCH=arm64 BASE_IMAGE='$(E2E_DIR)/base.img' CONFIG='$(E2E_CONFIG)' DIST='$(E2E_DIR)/dist'
	scripts/e2e-run.sh --out '$(E2E_DIR)'

lint-e2e: ## shellcheck the e2e scripts
	shellcheck -x scripts/e2e-*.sh
	python3 -B -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" scripts/e2e-verify.py
