"""Convert BatDetect2's network (Net2DFast_UK_same.pth.tar, from the batdetect2 1.3.1
package) to ONNX, for acoupi's `detection.kind: batdetect2`.

Only the network is converted: the spectrogram front-end, the class softmax, non-maximum
suppression and the detections are acoupi's Rust (src/detection/batdetect2/), compared
with batdetect2 itself by tests/integration/detect_batdetect2.rs. The graph takes the
resized spectrogram `spec` [1, 1, 128, W] (W a multiple of 32, any width) and gives
`pred_size` [1, 2, 128, W] and `pred_class_un_norm` [1, classes + 1, 128, W] (the class
logits, last = background), as Net2DFast.forward does. The softmax over the classes stays
out of the graph: tract runs a softmax over a non-last axis several times slower than the
rest of the network together (docs/detection/README.md), a loop over 18 values per pixel
does it in a fraction.

Besides the .onnx it writes the class names (one per line, the model's order) and checks
that the checkpoint's processing parameters are the ones acoupi's front-end implements:
a checkpoint trained otherwise is refused, not converted into wrong detections.

Run with the reference venv's python (scripts/detection-reference/setup-batdetect2.sh):
    python batdetect2_export.py CHECKPOINT OUT.onnx LABELS.txt
"""

import sys
import warnings

import torch

# torch 1.13's exporter warns about its own constants' shape inference; the graph checks out
# against batdetect2 in tests/integration/detect_batdetect2.rs.
warnings.filterwarnings("ignore", category=UserWarning)

# torch 1.13's weights-only unpickler cannot read the checkpoint's floats; the file comes
# from the batdetect2 package itself.
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})

from batdetect2.utils.detector_utils import load_model  # noqa: E402

# What acoupi's front-end and post-processing implement (batdetect2's defaults).
EXPECTED = {
    "model_name": "Net2DFast",
    "target_samp_rate": 256000,
    "fft_win_length": 0.002,
    "fft_overlap": 0.75,
    "max_freq": 120000,
    "min_freq": 10000,
    "resize_factor": 0.5,
    "spec_height": 256,
    "spec_divide_factor": 32,
    "spec_scale": "pcen",
    "denoise_spec_avg": True,
    "max_scale_spec": False,
    "scale_raw_audio": False,
    "nms_kernel_size": 9,
    "nms_top_k_per_sec": 200,
    "ip_height": 128,
}


class Network(torch.nn.Module):
    """Net2DFast with the two outputs detections are made of."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, spec):
        out = self.net(spec)
        return out.pred_size, out.pred_class_un_norm


def main(checkpoint, onnx_path, labels_path):
    model, params = load_model(checkpoint, load_weights=True, device=torch.device("cpu"))
    wrong = {k: (params.get(k), v) for k, v in EXPECTED.items() if params.get(k) != v}
    if wrong:
        sys.exit(f"{checkpoint}: processing parameters acoupi does not implement: {wrong}")
    model.eval()
    width = 192
    example = torch.rand(1, 1, params["ip_height"], width)
    dynamic = {"spec": {3: "width"}}
    outputs = ["pred_size", "pred_class_un_norm"]
    dynamic.update({name: {3: "width"} for name in outputs})
    with torch.no_grad():
        torch.onnx.export(
            Network(model),
            (example,),
            onnx_path,
            input_names=["spec"],
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=13,
            do_constant_folding=True,
        )
    with open(labels_path, "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in params["class_names"])
    print(f"{onnx_path}: Net2DFast, {len(params['class_names'])} classes")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: batdetect2_export.py CHECKPOINT OUT.onnx LABELS.txt")
    main(*sys.argv[1:])
