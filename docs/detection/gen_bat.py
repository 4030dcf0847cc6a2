# 2 s synthetic bat-like recording at 384 kHz: FM sweeps 80->45 kHz (5 ms, pipistrelle-like) every 90 ms + noise.
import numpy as np, soundfile as sf
sr=384000; n=int(2.0*sr); rng=np.random.default_rng(13); x=0.003*rng.standard_normal(n)
for k in range(21):
    s=int((0.05+k*0.09)*sr); L=int(0.005*sr); t=np.arange(L)/sr
    f=80000*(45000/80000)**(t/0.005); ph=2*np.pi*np.cumsum(f)/sr
    x[s:s+L]+=0.3*np.sin(ph)*np.hanning(L)
sf.write('synth_bat_384k.wav', x.astype(np.float32), sr, subtype='PCM_16'); print(n/sr, 's')
