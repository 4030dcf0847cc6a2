#!/usr/bin/env bash
# Create the BatDetect2 environment: a venv at VENV (default build/venv-batdetect2) over
# Debian's own python3 and its CPU build of PyTorch (python3-torch 1.13.1, from `make
# deps`: PyPI's torch wheels pull gigabytes of CUDA libraries), with batdetect2 1.3.1 and
# the pinned packages Debian lacks, from pip's configured index (no host is named here).
# It converts the network for acoupi (batdetect2_export.py) and is the reference the
# equivalence test compares with (batdetect2_reference.py). Nothing in it is committed or
# baked (batdetect2's wheel carries the model, non-commercial licence).
# batdetect2 is installed without its declared dependencies: torchaudio and torchvision
# are only for training, and the torch and scikit-learn Debian has are a patch release
# older than it declares (its inference runs on them; the equivalence test shows it).
# Usage: scripts/detection-reference/setup-batdetect2.sh [VENV]
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/build/venv-batdetect2}
# Debian's interpreter, whatever python3 comes first on PATH: python3-torch is its package.
python=/usr/bin/python3
[[ -x $python ]] || die "$python is missing; run make deps"
$python -c 'import torch, numpy, scipy, sklearn, pandas, soundfile' 2>/dev/null ||
	die "Debian's python3 cannot import torch, numpy, scipy, sklearn, pandas and soundfile; run make deps (python3-torch and friends)"
if [[ ! -x $venv/bin/python ]]; then
	$python -m venv --system-site-packages "$venv" || die "cannot create a venv; install python3-venv"
fi
log "installing batdetect2 1.3.1 and its pinned inference packages into $venv"
numpy=$($python -c 'import numpy; print(numpy.__version__)')
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "batdetect2==1.3.1"
# numpy pinned to Debian's: torch 1.13 is built against it.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
	"numpy==$numpy" "librosa==0.10.2.post1" "numba==0.68.1" "llvmlite==0.50.0" \
	"audioread==3.1.0" "soxr==1.1.0" "lazy-loader==0.6" "msgpack==1.2.4" "pooch==1.9.0"
"$venv/bin/python" -c 'import torch, librosa, batdetect2.utils.detector_utils' ||
	die "the packages installed but do not import; delete $venv and run again"
echo "$venv"
