# Variant: export class logits (pred_class_un_norm) and sizes only; softmax / pred_det are computed in Rust.
import numpy as np, torch, onnx, collections
import batdetect2.api as api
model, params = api.load_model(); model.eval()
class Wrap(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m=m
    def forward(s, x):
        o=s.m(x); return o.pred_class_un_norm, o.pred_size, o.pred_class_un_norm
spec=torch.from_numpy(np.load('bd_spec.npy'))
with torch.no_grad(): ref=model(spec).pred_class_un_norm.numpy()
ref.astype('<f4').tofile('bd_cls_logits.f32')
torch.onnx.export(Wrap(model), (spec,), 'bd_net2dfast_logits.onnx', dynamo=False, opset_version=17,
    input_names=['spec'], output_names=['cls','size','cls2'], dynamic_axes={'spec':{3:'T'}})
m=onnx.load('bd_net2dfast_logits.onnx'); print(dict(collections.Counter(n.op_type for n in m.graph.node)).get('Softmax'))
