# Re-implement BirdNET V2.4's in-graph spectrogram front-end in numpy (constants read from the .tflite)
# and compare with tflite_runtime's intermediate tensors.
import sys, numpy as np, tflite, tflite_runtime.interpreter as tfl
path=sys.argv[1]; buf=open(path,'rb').read(); m=tflite.Model.GetRootAsModel(buf,0); g=m.Subgraphs(0)
def const(name):
    for i in range(g.TensorsLength()):
        t=g.Tensors(i)
        if t.Name().decode()==name:
            b=m.Buffers(t.Buffer()); a=np.frombuffer(b.DataAsNumpy().tobytes(), dtype=np.float32 if t.Type()==0 else np.int32)
            return a.reshape(t.ShapeAsNumpy()) if t.ShapeLength() else a.reshape(())
x=np.fromfile(sys.argv[2],dtype='<f4')[:144000][None,:]
it=tfl.Interpreter(model_path=path, experimental_preserve_all_tensors=True, experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]['index'], x); it.invoke()
byname={d['name']:d['index'] for d in it.get_tensor_details()}
def T(n): return it.get_tensor(byname[n])
s=x-x.min(axis=1,keepdims=True); xn=(s/(s.max(axis=1,keepdims=True)+1e-6)-0.5)*2.0
print("norm maxabs diff", np.abs(xn-T('model/MEL_SPEC1/Mul')).max())
outs=[]
for k,(L,S) in enumerate([(2048,278),(1024,280)],1):
    win=const(f'model/MEL_SPEC{k}/stft/hann_window/sub_2'); W=const(f'model/MEL_SPEC{k}/Tensordot/MatMul'); p=float(const(f'model/MEL_SPEC{k}/truediv_1'))
    n=(xn.shape[1]-L)//S+1
    fr=np.stack([xn[0,i*S:i*S+L] for i in range(n)])*win
    F=np.fft.rfft(fr.astype(np.float64),axis=1)
    ref_cast=T(f'model/MEL_SPEC{k}/Cast')[0]
    print(f"MEL_SPEC{k}: frames={n} win periodic-hann? {np.allclose(win, 0.5-0.5*np.cos(2*np.pi*np.arange(L)/L), atol=1e-6)} exponent={p:.6f}")
    print("   Cast vs real part maxabs", np.abs(F.real-ref_cast).max(), " vs |F|", np.abs(np.abs(F)-ref_cast).max(), " ref range", ref_cast.min(), ref_cast.max())
    mel=(F.real@W.T.astype(np.float64)); mel=(mel*mel)**p
    spec=mel[:, ::-1].T  # reverse mel axis, -> [96, n]
    outs.append(spec)
cat=np.stack(outs,axis=-1)[None]  # [1,96,n,2]
ref=T('model/concatenate/concat')
print("concat shape", ref.shape, "numpy front-end vs tflite maxabs", np.abs(cat-ref).max(), "ref max", ref.max())
for k in (1,2):
    td=T(f'model/MEL_SPEC{k}/Tensordot')[0]; pw=T(f'model/MEL_SPEC{k}/Pow_1')[0]; rv=T(f'model/MEL_SPEC{k}/ReverseV2')[0]
    print(k, "tensordot", td.shape, "pow", pw.shape, "rev", rv.shape)
    L,S=[(2048,278),(1024,280)][k-1]
    win=const(f'model/MEL_SPEC{k}/stft/hann_window/sub_2'); W=const(f'model/MEL_SPEC{k}/Tensordot/MatMul'); p=float(const(f'model/MEL_SPEC{k}/truediv_1'))
    n=(144000-L)//S+1; fr=np.stack([xn[0,i*S:i*S+L] for i in range(n)])*win; re=np.fft.rfft(fr.astype(np.float64),axis=1).real
    mine=re@W.T
    print("  tensordot diff", np.abs(mine-td).max(), "| pow(x*x,p) diff", np.abs((mine*mine)**p-pw).max(), "| rev diff", np.abs(pw[:, ::-1]-rv).max(), "| rev axis0?", np.abs(pw[::-1]-rv).max())
    print("  ref concat channel", np.abs(T('model/concatenate/concat')[0,:,:,k-1] - rv.T).max())
for k in (1,2):
    rv=T(f'model/MEL_SPEC{k}/ReverseV2')[0]; tr=T(f'model/MEL_SPEC{k}/transpose')[0]; ex=T(f'model/MEL_SPEC{k}/ExpandDims')[0]
    print(k, "transpose", tr.shape, np.abs(tr-rv.T).max(), "expand", ex.shape, np.abs(ex[...,0]-rv.T).max())
c=T('model/concatenate/concat')[0]
print("concat ch0 vs mel1", np.abs(c[...,0]-T('model/MEL_SPEC1/ExpandDims')[0][...,0]).max(), "ch1 vs mel2", np.abs(c[...,1]-T('model/MEL_SPEC2/ExpandDims')[0][...,0]).max())
print([d['name'] for d in it.get_tensor_details() if 'concatenate' in d['name'] or 'BNORM_SPEC' in d['name']])
