import sys, tflite, numpy as np
buf=open(sys.argv[1],'rb').read(); m=tflite.Model.GetRootAsModel(buf,0); g=m.Subgraphs(0)
dt={0:np.float32,2:np.int32,1:np.float16,4:np.int64}
for i in range(g.TensorsLength()):
    t=g.Tensors(i); b=m.Buffers(t.Buffer())
    if b.DataLength()==0: continue
    name=t.Name().decode()
    if not any(s in name for s in sys.argv[2:]): continue
    a=np.frombuffer(b.DataAsNumpy().tobytes(),dtype=dt.get(t.Type(),np.uint8))
    shp=t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
    s = a.tolist() if a.size<=8 else f"size={a.size} min={a.min():.6g} max={a.max():.6g} first={a[:4].tolist()}"
    print(name, shp, s)
