# BatDetect2 Net2DFast -> ONNX with torch's TorchScript exporter (dynamo=False), dynamic time axis.
import sys, collections, numpy as np, torch, onnx
import batdetect2.api as api
model, params = api.load_model(); model.eval()
class Wrap(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m=m
    def forward(s, x):
        o=s.m(x); return o.pred_det, o.pred_size, o.pred_class
spec=torch.from_numpy(np.load('bd_spec.npy'))
torch.onnx.export(Wrap(model), (spec,), 'bd_net2dfast.onnx', dynamo=False, opset_version=17,
    input_names=['spec'], output_names=['pred_det','pred_size','pred_class'],
    dynamic_axes={'spec':{3:'T'}, 'pred_det':{3:'T'}, 'pred_size':{3:'T'}, 'pred_class':{3:'T'}})
m=onnx.load('bd_net2dfast.onnx'); onnx.checker.check_model(m)
print("opset", [ (o.domain,o.version) for o in m.opset_import], "ops", dict(collections.Counter(n.op_type for n in m.graph.node)))
for n in m.graph.node:
    if n.op_type=='Resize': print("Resize attrs", {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
