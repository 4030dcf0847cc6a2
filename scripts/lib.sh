#!/usr/bin/env bash
# Shared helpers for the image scripts (sourced, never run): messages, partition lookup,
# debugfs batches. Needs sfdisk (fdisk), jq, debugfs and dumpe2fs (e2fsprogs).
# shellcheck shell=bash

# Progress and warnings go to stderr; stdout carries only a script's result.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}
need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || die "missing tool $tool; run make deps"
	done
}

# part_field IMAGE N FIELD: start/size (sectors) or type of partition N from sfdisk's JSON.
part_field() {
	sfdisk --json "$1" 2>/dev/null |
		jq -r --argjson n "$2" --arg f "$3" \
			'.partitiontable.partitions[$n - 1][$f] // empty | tostring'
}

# part_count IMAGE: number of partitions in the table (0 when there is none).
part_count() {
	sfdisk --json "$1" 2>/dev/null | jq -r '.partitiontable.partitions | length' ||
		echo 0
}

# sector_size IMAGE: logical sector size in bytes (512 for every Pi OS image).
sector_size() {
	sfdisk --json "$1" 2>/dev/null | jq -r '.partitiontable.sectorsize // 512'
}

# run_debugfs SPEC CMDFILE: run a debugfs -w batch on SPEC ("image?offset=N"); fail on any
# error except the two a batch provokes on purpose: mkdir of an existing directory and
# rm of a missing file (debugfs exits 0 whatever happens, so stderr is the only signal).
run_debugfs() {
	local spec=$1 cmds=$2 errs
	errs=$(debugfs -w -f "$cmds" "$spec" 2>&1 >/dev/null |
		grep -v -e '^debugfs [0-9]' \
			-e 'Ext2 directory already exists' \
			-e 'File not found by ext2_lookup' || true)
	[[ -z $errs ]] || die "debugfs on $spec failed: $errs"
}

# mkdir_missing SPEC DIR: the debugfs `mkdir` lines for DIR and each parent missing in
# SPEC ("image?offset=N" or a file system image). A `mkdir` of a directory that exists is
# not harmless: debugfs 1.47 leaves an unconnected inode behind (e2fsck then reports
# errors), and real Raspberry Pi OS roots already have most of our directories.
mkdir_missing() {
	local spec=$1 p="" c
	local -a parts
	IFS=/ read -r -a parts <<<"${2#/}"
	for c in "${parts[@]}"; do
		p="$p/$c"
		debugfs -R "stat $p" "$spec" 2>&1 | grep -q "Inode:" || printf 'mkdir %s\n' "$p"
	done
}

# inspect_config HOST_BINARY FILE: the JSON report of `acoupi config inspect` on FILE
# (valid, error, has_deployment, deployment_name, holds_secrets, program,
# detection_model_file, detection_labels_file), from a build of
# acoupi for this machine; dies with the loader's reason when FILE is not valid. The one
# place the image scripts learn anything about a configuration's content.
inspect_config() {
	local host=$1 file=$2 report
	[[ -x $host ]] || die "no host acoupi binary at $host to inspect $file; run make build or pass --host-binary"
	report=$("$host" config inspect --json "$file" 2>/dev/null) || true
	jq -e 'type == "object" and has("valid")' <<<"$report" >/dev/null 2>&1 ||
		die "$host config inspect gave no report on $file (is it a host build of acoupi?)"
	[[ $(jq -r .valid <<<"$report") == true ]] ||
		die "invalid site configuration $file: $(jq -r .error <<<"$report")"
	printf '%s\n' "$report"
}
