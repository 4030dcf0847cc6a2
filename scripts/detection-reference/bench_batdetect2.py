#!/usr/bin/env python3
"""BatDetect2 on batdetect2's own test recordings: `acoupi detect --json` against batdetect2.

For each recording `make models` unpacked (build/models/batdetect2/audio/), runs the acoupi
binary (ACOUPI, default target/release/acoupi) with a temporary ACOUPI_HOME configured for
kind batdetect2, then batdetect2 1.3.1 itself (batdetect2_reference.py beside this file,
torch limited to one thread as tract is), and prints one Markdown table row per side:
audio seconds, wall time of the whole commands (model load included), real-time factor
(audio seconds per wall second) and the largest peak RSS (wait4's ru_maxrss). With
QEMU=qemu-aarch64-static and ACOUPI pointing at the aarch64 binary it also times that
binary under qemu-user on the 2-s recording, a relative figure only. Run it with the batdetect2 venv's python
(make bench-batdetect2).
"""

import os
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

from bench import measure

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "build/models/batdetect2"


def seconds_of(wav: Path) -> float:
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def main() -> int:
    acoupi = os.environ.get("ACOUPI", str(ROOT / "target/release/acoupi"))
    qemu = os.environ.get("QEMU")
    model = MODELS / "Net2DFast_UK_same.onnx"
    if not model.is_file():
        sys.exit("bench_batdetect2.py: no model in build/models/batdetect2; run `make models`")
    wavs = sorted((MODELS / "audio").glob("*.wav"))
    if qemu:
        # Emulation is slow: the 2-s recording alone gives the relative figure.
        wavs = [w for w in wavs if w.name == "20230322_172000_selec2.wav"]
    audio = sum(seconds_of(w) for w in wavs)
    sides = {"acoupi": [0.0, 0.0], "batdetect2": [0.0, 0.0]}
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, ACOUPI_HOME=home)
        setup = [acoupi, "setup", "--no-prompt"]
        for s in [
            "microphone.device_name=bench",
            "detection.kind=batdetect2",
            f"detection.model_file={model}",
            f"detection.labels_file={MODELS / 'labels.txt'}",
        ]:
            setup += ["--set", s]
        subprocess.run(([qemu] if qemu else []) + setup, env=env, check=True, capture_output=True)
        reference = [sys.executable, str(Path(__file__).with_name("batdetect2_reference.py"))]
        one_thread = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        for wav in wavs:
            runs = {"acoupi": ([qemu] if qemu else []) + [acoupi, "detect", str(wav), "--json"]}
            if not qemu:
                runs["batdetect2"] = reference + [str(wav)]
            for side, cmd in runs.items():
                wall, rss = measure(cmd, env if side == "acoupi" else one_thread)
                sides[side][0] += wall
                sides[side][1] = max(sides[side][1], rss)
    names = {
        "acoupi": "acoupi detect --json (tract-onnx, 1 thread)" + (" under qemu-user aarch64" if qemu else ""),
        "batdetect2": "batdetect2 1.3.1 process_file (torch 1.13 CPU, 1 thread)",
    }
    print(f"| side ({len(wavs)} recordings, {audio:.1f} s of audio) | wall (load included) | real-time factor | peak RSS |")
    print("|---|---|---|---|")
    for side, (wall, rss) in sides.items():
        if wall > 0:
            print(f"| {names[side]} | {wall:.1f} s | {audio / wall:.2f}x | {rss:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
