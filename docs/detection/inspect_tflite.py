import sys, collections, tflite, numpy as np
path = sys.argv[1]
buf = open(path,'rb').read()
m = tflite.Model.GetRootAsModel(buf, 0)
print("file", path, "bytes", len(buf), "schema version", m.Version(), "subgraphs", m.SubgraphsLength(), "buffers", m.BuffersLength())
desc = m.Description()
print("description", desc)
opnames = {v:k for k,v in tflite.BuiltinOperator.__dict__.items() if not k.startswith('_')}
ttype = {v:k for k,v in tflite.TensorType.__dict__.items() if not k.startswith('_')}
codes=[]
for i in range(m.OperatorCodesLength()):
    oc = m.OperatorCodes(i)
    b = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    name = opnames.get(b, str(b))
    if name == 'CUSTOM': name = 'CUSTOM:' + oc.CustomCode().decode()
    codes.append((name, oc.Version()))
for si in range(m.SubgraphsLength()):
    g = m.Subgraphs(si)
    print(f"subgraph {si}: {g.OperatorsLength()} operators, {g.TensorsLength()} tensors")
    def tinfo(ix):
        t = g.Tensors(ix)
        return f"{t.Name().decode()} {ttype[t.Type()]} shape={t.ShapeAsNumpy().tolist() if t.ShapeLength() else []} sig={t.ShapeSignatureAsNumpy().tolist() if t.ShapeSignatureLength() else None}"
    for k in range(g.InputsLength()): print("  input", tinfo(g.Inputs(k)))
    for k in range(g.OutputsLength()): print("  output", tinfo(g.Outputs(k)))
    cnt = collections.Counter()
    dtypes = collections.Counter()
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        name, ver = codes[op.OpcodeIndex()]
        cnt[(name, ver)] += 1
    for (n,v),c in sorted(cnt.items()): print(f"  op {n} v{v}: {c}")
    for k in range(g.TensorsLength()):
        dtypes[ttype[g.Tensors(k).Type()]] += 1
    print("  tensor dtypes", dict(dtypes))
    if '-v' in sys.argv:
        for k in range(min(g.OperatorsLength(), int(sys.argv[sys.argv.index('-v')+1]))):
            op = g.Operators(k)
            name, ver = codes[op.OpcodeIndex()]
            ins = [tinfo(i) if i>=0 else '-' for i in op.InputsAsNumpy()]
            outs = [tinfo(i) for i in op.OutputsAsNumpy()]
            print(f"   #{k} {name}\n      in: {ins}\n      out: {outs}")
