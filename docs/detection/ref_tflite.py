# Reference: tflite_runtime on raw f32 windows of 144000 samples; saves logits to ref_logits.npy
import sys, time, numpy as np, tflite_runtime, tflite_runtime.interpreter as tfl
print("tflite_runtime", tflite_runtime.__version__)
it=tfl.Interpreter(model_path=sys.argv[1], num_threads=1); it.allocate_tensors()
i=it.get_input_details()[0]; o=it.get_output_details()[0]
print("input", i['name'], i['shape'], i['dtype'], "output", o['name'], o['shape'], o['dtype'])
x=np.fromfile(sys.argv[2], dtype='<f4'); L=144000
outs=[]
for w in range(x.size//L):
    it.set_tensor(i['index'], x[w*L:(w+1)*L][None,:]); t=time.time(); it.invoke(); dt=time.time()-t
    y=it.get_tensor(o['index'])[0].copy(); outs.append(y)
    top=np.argsort(-y)[:5]
    print(f"window {w} ({dt*1000:.0f} ms): top5 logits", [(int(k), round(float(y[k]),4)) for k in top])
np.save(sys.argv[3], np.array(outs))
