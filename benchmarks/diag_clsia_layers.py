"""Where does CLSIA lose what makes a clip anomalous? kNN novelty at three depths of one fitted model.

The fit of ``tests/methods/test_clsia.py`` (the easy 2-section simulated fan set, 6 epochs; the same
set-up as ``benchmarks/seed_spread.py clsia``), for several training seeds. For section 00, the
1-NN Euclidean distance to the training clips of the section, computed on

* ``emb``     -- the encoder's embedding (what CLSIA's kNN back-end scores; the method's own score),
* ``gap``     -- the encoder's last feature map before the global depthwise conv, averaged over
  frequency and time,
* ``melmean`` -- the pre-normalised log-mel input averaged over time (no network at all),

and the AUC of normal test clips against (a) the section's anomalous test clips ("faults") and (b)
white noise in place of each normal test clip ("noise", ``seed_spread.make_gross(kind="replace")``).
Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_clsia_layers.py --seeds 0 1 2
    # the CI test's set since issue 14 (a pump's), the pooled read-out, a one-block net:
    ... diag_clsia_layers.py --machines pump --seeds 0 1 2 3 4 5 6 7 --net '{"readout": "mean"}'
    ... diag_clsia_layers.py --machines pump --seeds 0 1 2 3 4 5 6 7 --net '{"setting": [[2, 64, 1, 2]]}'

Figures and their reading: docs/methods/clsia.md, "Where the information is lost".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_spread as ss  # noqa: E402

from auscult.audio import AudioConfig  # noqa: E402
from auscult.data.index import DatasetIndex  # noqa: E402
from auscult.data.source import AudioSource  # noqa: E402
from auscult.eval.metrics import auc  # noqa: E402
from auscult.methods import FitContext, build_method  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--root", type=Path, default=Path("runs/seed_spread_data"))
ap.add_argument("--machines", default=None,
                help="machine type of the easy set (default: seed_spread's 'fan'; the CI test's set is a pump's since issue 14)")
ap.add_argument("--tag", default=None, help="a label copied into every output line")
ap.add_argument("--net", default=None, help='JSON merged into the net section, e.g. \'{"setting": [[2, 64, 1, 2]]}\'')
ap.add_argument("--untrained", action="store_true",
                help="one epoch at learning rate 1e-12: the initial weights, batch norm re-estimated as after training")
cli = ap.parse_args()
torch.set_num_threads(1)
a = argparse.Namespace(**ss.DEFAULTS["clsia"], method="clsia")
a.root = cli.root
if cli.machines:
    a.machines = cli.machines
for k in ("preset","machines","sections","train_source","train_target","test_n","duration","data_seed","epochs"):
    if not hasattr(a, k): setattr(a, k, None)
root = ss.make_data(a, a.root)
idx = DatasetIndex.scan(root)
train = sorted(idx.select(split="train"), key=lambda c: str(c.path)); test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
audio = AudioSource(AudioConfig(sample_rate=16000, length="tile", duration=a.duration), memory=True)
gross = ss.make_gross(test, root, "replace")
def feats(m, clips, kind):
    key = m._model_for(clips[0]); enc = m.models[key]["encoder"].eval(); mean, std = m.models[key]["prenorm"]
    rows = []
    with torch.no_grad():
        for _, xb in audio.iter_batches(clips, 16):
            f = ((m.frontend(xb) - mean) / std).unsqueeze(1)
            if kind == "emb": rows.append(enc(f).numpy())
            elif kind == "gap": rows.append(enc.forward_features(f).mean((2, 3)).numpy())
            else: rows.append(f.mean(-1).flatten(1).numpy())  # mean log-mel spectrum
    return np.concatenate(rows)
import os, time  # noqa: E402
for seed in cli.seeds:
    t0 = time.time()
    cfg = ss.clsia_config(1 if cli.untrained else 6)
    if cli.untrained:
        cfg["train"]["lr"] = 1e-12
    if cli.net:
        cfg["net"] = {**cfg["net"], **json.loads(cli.net)}
    m = build_method("clsia", cfg, FitContext(seed=seed, quiet=True)).fit(train, [], audio)
    sec = "00"
    tr = [c for c in train if c.section == sec]; nt = [c for c in test if c.section == sec and c.label == "normal"]; gr = [c for c in gross if c.section == sec]
    an = [c for c in test if c.section == sec and c.label == "anomaly"]
    out = {"seed": seed, "untrained": cli.untrained, "net": cfg["net"], "machines": a.machines, "tag": cli.tag,
           "fit_s": round(time.time() - t0, 1), "load1": round(os.getloadavg()[0], 2)}
    for kind in ("emb", "gap", "melmean"):
        T, N, G, A = feats(m, tr, kind), feats(m, nt, kind), feats(m, gr, kind), feats(m, an, kind)
        d = lambda E: np.sqrt(((E[:, None] - T[None]) ** 2).sum(-1)).min(1)
        dn, dg, da = d(N), d(G), d(A)
        out[kind] = {"noise": round(float(auc([0]*len(dn)+[1]*len(dg), np.r_[dn, dg])), 3), "faults": round(float(auc([0]*len(dn)+[1]*len(da), np.r_[dn, da])), 3)}
    print(json.dumps(out), flush=True)
