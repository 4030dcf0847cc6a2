#!/usr/bin/env python3
"""The reference side of the BatDetect2 equivalence test: batdetect2's detections for a WAV.

Run with the venv scripts/detection-reference/setup-batdetect2.sh creates (batdetect2
1.3.1 over Debian's CPU build of torch). Prints one JSON object on stdout:
{"detections": [{"start_time", "end_time", "low_freq", "high_freq", "class",
"class_prob", "det_prob"}, ...], "duration": seconds of audio, "seconds": analysis time},
from `batdetect2.api.process_file` with the package's default configuration (3-s chunks,
its own model file, the same one `make models` converts for acoupi).

With --dump DIR it also writes, for each chunk, the spectrogram the network took
(`chunk-N.f32`: little-endian float32, 128 rows by `width`, row-major) and lists the chunks
in the JSON (`"chunks": [{"start", "width", "file"}]`), so the network and the
post-processing can be compared on their own, apart from the front-end.

Usage: batdetect2_reference.py FILE.wav [--dump DIR]
"""

import argparse
import json
import os
import sys
import time

import torch

# torch 1.13's weights-only unpickler cannot read the checkpoint's floats; the file comes
# from the batdetect2 package itself.
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})

from batdetect2 import api  # noqa: E402
from batdetect2.utils import detector_utils as du  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wav")
    p.add_argument("--dump", help="write each chunk's spectrogram into this directory")
    args = p.parse_args()

    config = api.get_config()
    chunks = []
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        compute = du.compute_spectrogram

        def dumping(audio, sampling_rate, params, device, return_np=False):
            duration, spec, spec_np = compute(audio, sampling_rate, params, device, return_np)
            n = len(chunks)
            name = os.path.join(args.dump, f"chunk-{n}.f32")
            spec[0, 0].cpu().numpy().astype("<f4").tofile(name)
            chunks.append({"start": n * config["chunk_size"], "width": spec.shape[-1], "file": name})
            return duration, spec, spec_np

        du.compute_spectrogram = dumping

    started = time.monotonic()
    results = api.process_file(args.wav, config=config)
    seconds = time.monotonic() - started
    keys = ("start_time", "end_time", "low_freq", "high_freq", "class", "class_prob", "det_prob")
    pred = results["pred_dict"]
    answer = {
        "detections": [{k: d[k] for k in keys} for d in pred["annotation"]],
        "duration": pred["duration"],
        "seconds": seconds,
    }
    if args.dump:
        answer["chunks"] = chunks
    json.dump(answer, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
