import sys, time, json, numpy as np, torch
import batdetect2.api as api
t=time.time(); model, params = api.load_model(); print("load s", round(time.time()-t,2), file=sys.stderr)
cfg=api.get_config(); 
t=time.time(); res=api.process_file(sys.argv[1], model=model, config=cfg); print("process s", round(time.time()-t,2), file=sys.stderr)
ann=res['pred_dict']['annotation']; print("n detections", len(ann))
for a in ann[:4]: print(json.dumps(a))
# model input/output for one 3-s chunk for engine comparison
audio=api.load_audio(sys.argv[1]); spec=api.generate_spectrogram(audio, config=cfg)
print("model input spec shape", tuple(spec.shape))
with torch.no_grad(): out=model(spec)
print("outputs:", {k: tuple(getattr(out,k).shape) for k in ('pred_det','pred_size','pred_class','features')})
np.save('bd_spec.npy', spec.numpy()); np.save('bd_pred_det.npy', out.pred_det.numpy()); np.save('bd_pred_class.npy', out.pred_class.numpy()); np.save('bd_pred_size.npy', out.pred_size.numpy())
