"""Convert BatDetect2's network (Net2DFast_UK_same.pth.tar, from the batdetect2 1.3.1
package) to ONNX, for acoupi's `detection.kind: batdetect2`.

Only the network is converted: the spectrogram front-end, the class softmax, non-maximum
suppression and the detections are acoupi's Rust (src/detection/batdetect2/), compared
with batdetect2 itself by tests/integration/detect_batdetect2.rs. The softmax over the
classes stays out of the graph: tract runs a softmax over a non-last axis several times
slower than the rest of the network together (docs/detection/README.md), a loop over 18
values per pixel does it in a fraction.

The file holds Net2DFast cut in three independent graphs, so acoupi can run the wide
layers on a few hundred columns of a chunk at a time (`detection::batdetect2::tiles`)
instead of holding 32 channels of the whole 128 x 3008 chunk at once (about 50 MB each):

- encoder: `enc_spec` [1, 1, 128, w] -> `enc_x2` [1, 64, 32, w/4], `enc_x3`
  [1, 256, 16, w/8], `enc_bottleneck` [1, 256, 1, w/8]: Net2DFast.forward up to its
  self-attention;
- attention: `att_bottleneck` [1, 256, 1, w/8] -> `att_out`: the self-attention, over the
  whole chunk (it mixes all columns: the one part that cannot be cut);
- decoder: `dec_spec`, `dec_attended`, `dec_x2`, `dec_x3` (the same widths) ->
  `pred_size` [1, 2, 128, w], `pred_class_un_norm` [1, classes + 1, 128, w] (the class
  logits, last = background): the rest of forward, with the first block (`conv_dn_0`)
  computed again from the spectrogram rather than kept (it is the widest and cheapest).

Run on the whole chunk, encoder, attention and decoder give Net2DFast.forward's outputs
to the bit; `check_parts` below asserts it before anything is written.

Besides the .onnx it writes the class names (one per line, the model's order) and checks
that the checkpoint's processing parameters are the ones acoupi's front-end implements:
a checkpoint trained otherwise is refused, not converted into wrong detections.

Run with the reference venv's python (scripts/detection-reference/setup-batdetect2.sh):
    python batdetect2_export.py CHECKPOINT OUT.onnx LABELS.txt
"""

import sys
import warnings

import torch
import torch.nn.functional as F

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


class Parts(torch.nn.Module):
    """Net2DFast's forward cut in three: encoder, attention, decoder (module docstring)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def encoder(self, spec):
        n = self.net
        x2 = n.conv_dn_1(n.conv_dn_0(spec))
        x3 = n.conv_dn_2(x2)
        x3 = F.relu(n.conv_dn_3_bn(n.conv_dn_3(x3)))
        bottleneck = F.relu(n.conv_1d_bn(n.conv_1d(x3)))
        return x2, x3, bottleneck

    def decoder(self, spec, attended, x2, x3):
        n = self.net
        x = attended.repeat([1, 1, n.bneck_height * 4, 1])
        x = n.conv_up_2(x + x3)
        x = n.conv_up_3(x + x2)
        x = n.conv_up_4(x + n.conv_dn_0(spec))
        x = F.relu(n.conv_op_bn(n.conv_op(x)))
        return F.relu(n.conv_size_op(x)), n.conv_classes_op(x)

    def forward(self, enc_spec, att_bottleneck, dec_spec, dec_attended, dec_x2, dec_x3):
        return (
            *self.encoder(enc_spec),
            self.net.att(att_bottleneck),
            *self.decoder(dec_spec, dec_attended, dec_x2, dec_x3),
        )


INPUTS = {
    # name: (channels, rows, width divisor)
    "enc_spec": (1, 128, 1),
    "att_bottleneck": (256, 1, 8),
    "dec_spec": (1, 128, 1),
    "dec_attended": (256, 1, 8),
    "dec_x2": (64, 32, 4),
    "dec_x3": (256, 16, 8),
}
OUTPUTS = {
    "enc_x2": 4,
    "enc_x3": 8,
    "enc_bottleneck": 8,
    "att_out": 8,
    "pred_size": 1,
    "pred_class_un_norm": 1,
}


def check_parts(model, parts, width):
    """The three parts chained on one whole spectrogram equal Net2DFast.forward."""
    spec = torch.rand(1, 1, 128, width)
    out = model(spec)
    x2, x3, bottleneck = parts.encoder(spec)
    size, classes = parts.decoder(spec, model.att(bottleneck), x2, x3)
    if not (torch.equal(size, out.pred_size) and torch.equal(classes, out.pred_class_un_norm)):
        sys.exit("the cut network differs from Net2DFast.forward: batdetect2's model changed?")


def main(checkpoint, onnx_path, labels_path):
    model, params = load_model(checkpoint, load_weights=True, device=torch.device("cpu"))
    wrong = {k: (params.get(k), v) for k, v in EXPECTED.items() if params.get(k) != v}
    if wrong:
        sys.exit(f"{checkpoint}: processing parameters acoupi does not implement: {wrong}")
    model.eval()
    parts = Parts(model)
    width = 192
    examples = tuple(torch.rand(1, c, h, width // d) for c, h, d in INPUTS.values())
    # One symbol per divisor and part, so each part's widths are set together.
    dynamic = {
        name: {3: f"{name.split('_')[0]}_w{d}"}
        for name, (_, _, d) in INPUTS.items()
    }
    part_of = {"enc_x2": "enc", "enc_x3": "enc", "enc_bottleneck": "enc", "att_out": "att"}
    dynamic.update(
        {name: {3: f"{part_of.get(name, 'dec')}_w{d}"} for name, d in OUTPUTS.items()}
    )
    with torch.no_grad():
        check_parts(model, parts, 3008)
        torch.onnx.export(
            parts,
            examples,
            onnx_path,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes=dynamic,
            opset_version=13,
            do_constant_folding=True,
        )
    with open(labels_path, "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in params["class_names"])
    print(f"{onnx_path}: Net2DFast in three parts, {len(params['class_names'])} classes")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: batdetect2_export.py CHECKPOINT OUT.onnx LABELS.txt")
    main(*sys.argv[1:])
