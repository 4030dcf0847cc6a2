# 9 s synthetic "bird-like" test signal at 48 kHz: repeated FM chirps 2.5-6 kHz plus weak noise; deterministic.
import numpy as np, soundfile as sf
sr=48000; dur=9.0; t=np.arange(int(sr*dur))/sr
rng=np.random.default_rng(13)
x=0.01*rng.standard_normal(t.size)
for k in range(18):
    t0=0.25+k*0.5; n=int(0.15*sr); s=int(t0*sr)
    tt=np.arange(n)/sr
    f=6000-3500*tt/0.15 + 400*np.sin(2*np.pi*40*tt)
    ph=2*np.pi*np.cumsum(f)/sr
    x[s:s+n]+=0.4*np.sin(ph)*np.hanning(n)
sf.write('synth_birdish_48k.wav', x.astype(np.float32), sr, subtype='PCM_16')
x16=sf.read('synth_birdish_48k.wav', dtype='float32')[0]
x16.astype('<f4').tofile('synth_birdish_48k.f32')
print(x16.shape, x16.dtype, float(abs(x16).max()))
