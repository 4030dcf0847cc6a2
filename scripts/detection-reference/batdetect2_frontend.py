"""BatDetect2 1.3.1's spectrogram front-end on a WAV file, dumped for comparison with ours.

Usage: batdetect2_frontend.py OUT_DIR WAV [WAV ...]

Runs batdetect2's own functions as `batdetect2.api.process_file` does, with the api's
default configuration (`api.CONFIG`, the checkpoint's parameters over the defaults):
`load_audio_and_samplerate` (librosa.load, then librosa's polyphase resampling to
256 kHz), `iterate_over_chunks` (3 s) and, per chunk, `compute_spectrogram` (pad_audio,
STFT magnitude, crop to 10-120 kHz, PCEN, mean subtraction, bilinear resize to 128 rows).

Writes into OUT_DIR/<the WAV's file stem>/ (stems must differ):
- `audio.f32`: the resampled recording, raw little-endian float32;
- `chunk<i>.f32`: chunk i's spectrogram as the network receives it, [128][width]
  row-major little-endian float32 (the tensor [1, 1, 128, width]);
- `frontend.json`: the sample rates, the resampled length, the configuration used and,
  per chunk, its start, unpadded duration and shape.

Read by tests/integration/detect_batdetect2_frontend.rs.
"""

import inspect
import json
import sys
from pathlib import Path

import numpy as np
import torch

# The api module loads its bundled checkpoint at import with weights_only=True, which
# this torch refuses for the checkpoint's pickled numpy values: it is the package's own
# file, loaded in full.
if "weights_only" in inspect.signature(torch.load).parameters:
    _load = torch.load

    def _load_full(*args, **kwargs):
        kwargs["weights_only"] = False
        return _load(*args, **kwargs)

    torch.load = _load_full

from batdetect2 import api  # noqa: E402
from batdetect2.utils import audio_utils as au  # noqa: E402
from batdetect2.utils import detector_utils as du  # noqa: E402

SPEC_KEYS = [
    "fft_win_length",
    "fft_overlap",
    "spec_height",
    "resize_factor",
    "spec_divide_factor",
    "max_freq",
    "min_freq",
    "spec_scale",
    "denoise_spec_avg",
    "max_scale_spec",
]


def main() -> None:
    out_dir = Path(sys.argv[1])
    for wav in sys.argv[2:]:
        dump(Path(wav), out_dir / Path(wav).stem)


def dump(wav: Path, out: Path) -> None:
    """Writes the front-end of `wav` into `out` (see the module doc)."""
    out.mkdir(parents=True, exist_ok=True)
    config = api.CONFIG
    samplerate, audio, file_samplerate = au.load_audio_and_samplerate(
        str(wav),
        time_exp_fact=config.get("time_expansion", 1) or 1,
        target_samp_rate=config["target_samp_rate"],
        scale=config["scale_raw_audio"],
        max_duration=config.get("max_duration"),
    )
    audio.astype("<f4").tofile(out / "audio.f32")
    params = {key: config[key] for key in SPEC_KEYS}
    chunks = []
    for i, (start, chunk) in enumerate(
        du.iterate_over_chunks(audio, samplerate, config["chunk_size"])
    ):
        duration, spec, _ = du.compute_spectrogram(
            chunk, samplerate, params, torch.device("cpu")
        )
        spec = spec.detach().cpu().numpy()
        assert spec.shape[:2] == (1, 1), spec.shape
        spec[0, 0].astype("<f4").tofile(out / f"chunk{i}.f32")
        chunks.append(
            {
                "start_s": float(start),
                "duration_s": float(duration),
                "height": int(spec.shape[2]),
                "width": int(spec.shape[3]),
            }
        )
    meta = {
        "file_samplerate": int(file_samplerate),
        "samplerate": int(samplerate),
        "resampled_len": int(audio.shape[0]),
        "chunk_size": config["chunk_size"],
        "scale_raw_audio": config["scale_raw_audio"],
        "time_expansion": config.get("time_expansion"),
        "spectrogram": params,
        "chunks": chunks,
    }
    (out / "frontend.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
