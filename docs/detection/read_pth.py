# Read a torch zip checkpoint without torch: stub the tensor rebuild functions.
import sys, zipfile, pickle, numpy as np, json, collections
path=sys.argv[1]; z=zipfile.ZipFile(path)
prefix=z.namelist()[0].split('/')[0]
DT={'FloatStorage':np.float32,'LongStorage':np.int64,'IntStorage':np.int32,'HalfStorage':np.float16,'DoubleStorage':np.float64,'BoolStorage':np.bool_}
class Storage:
    def __init__(s, kind): s.kind=kind
def rebuild(storage, offset, size, stride, *a):
    st, key = storage
    raw=np.frombuffer(z.read(f'{prefix}/data/{key}'), dtype=DT[st])
    n=int(np.prod(size)) if len(size) else 1
    arr=np.lib.stride_tricks.as_strided(raw[offset:], shape=tuple(size), strides=tuple(s*raw.itemsize for s in stride)) if len(size) else raw[offset:offset+1].reshape(())
    return np.array(arr)
class U(pickle.Unpickler):
    def find_class(s, mod, name):
        if mod=='torch._utils' and name.startswith('_rebuild_tensor'): return rebuild
        if mod=='torch._utils' and name=='_rebuild_parameter': return lambda t,*a: t
        if mod=='torch' and name.endswith('Storage'): return name
        if mod=='collections' and name=='OrderedDict': return collections.OrderedDict
        return super().find_class(mod,name)
    def persistent_load(s, pid):
        # ('storage', storage_type, key, location, numel)
        return (pid[1] if isinstance(pid[1],str) else pid[1].__name__, pid[2])
obj=U(z.open(f'{prefix}/data.pkl')).load()
print("top-level keys:", list(obj.keys()))
p=obj['params']
short={k:v for k,v in p.items() if not isinstance(v,(list,dict)) or k in('class_names',)}
print(json.dumps({k:(v if not isinstance(v,float) or v==v else str(v)) for k,v in short.items()}, indent=0, default=str)[:4000])
sd=obj['state_dict']; tot=0
for k,v in sd.items():
    tot+=v.size; print(k, v.dtype, list(v.shape))
print("params total", tot)
np.savez('batdetect2_weights.npz', **sd)
