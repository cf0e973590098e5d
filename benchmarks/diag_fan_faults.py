"""How much does each fan fault change the fan's sound? Machine alone and in the recorded mix.

Not part of CI. For seeds 0 1 2 (``--seeds``) and ``--units`` clips per seed (clip seed
``1000 * seed + i``, each drawing its own unit and operating point), renders the healthy clip and the
same clip with each fault at severity 0.5 and 1 (the simulator draws machine, level and background
from fault-independent streams, so faulty minus healthy is the fault alone) and prints, in dB:

- machine alone at the microphone (no background): the time-averaged log-mel change in the lowest
  16 of 128 mel bands (0-~250 Hz), in the other 112, its largest band, the 1x shaft-order line, the
  broadband 0.5-3 kHz and the total power;
- the recorded mix (factory background, both domains): the mean absolute log-mel change over the 128
  bands and the largest band.

Each figure is the mean ± std over the per-seed means (issue 14, session 5b: docs/synth.md, "The
fan's faults: physics check").

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_fan_faults.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from auscult.data.synth import MACHINES, render_clip
from auscult.data.synth.difficulty import log_mel

SR = 16000
DB = 10.0 / np.log(10.0)  # log_mel is a natural log


def _power(x):
    return np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machine", default="fan")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--severities", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args(argv)
    t0 = time.time()
    kinds = list(MACHINES[args.machine].kinds)
    alone, mix = {}, {}
    for seed in args.seeds:
        for i in range(args.units):
            cs = 1000 * seed + i
            h, info = render_clip(args.machine, seed=cs, background=False, return_info=True, duration=args.duration)
            h = h.astype(np.float64)
            fr = float(info.params.get("shaft_hz", 0.0))
            f = np.fft.rfftfreq(len(h), 1.0 / SR)
            ph, lh = _power(h), log_mel(h, SR).mean(1)
            one_x = np.abs(f - fr) <= 2.5 * (f[1] - f[0]) if fr else None
            bb = (f > 500) & (f < 3000)
            hm = {d: log_mel(render_clip(args.machine, seed=cs, domain=d, duration=args.duration).astype(np.float64),
                             SR).mean(1) for d in ("source", "target")}
            for kind in kinds:
                for sev in args.severities:
                    a = render_clip(args.machine, seed=cs, anomaly=kind, severity=sev, background=False,
                                    duration=args.duration).astype(np.float64)
                    pa = _power(a)
                    d = (log_mel(a, SR).mean(1) - lh) * DB
                    r = [d[:16].mean(), d[16:].mean(), d.max(),
                         10 * np.log10(pa[one_x].sum() / ph[one_x].sum()) if fr else np.nan,
                         10 * np.log10(pa[bb].sum() / ph[bb].sum()), 10 * np.log10(pa.sum() / ph.sum())]
                    alone.setdefault((kind, sev), {}).setdefault(seed, []).append(r)
                    for dom in ("source", "target"):
                        am = render_clip(args.machine, seed=cs, domain=dom, anomaly=kind, severity=sev,
                                         duration=args.duration).astype(np.float64)
                        dm = (log_mel(am, SR).mean(1) - hm[dom]) * DB
                        mix.setdefault((kind, sev), {}).setdefault(seed, []).append([np.abs(dm).mean(), dm.max()])

    def fmt(tab, key):
        m = np.array([np.mean(v, 0) for v in tab[key].values()])
        return " | ".join(f"{mu:+6.2f} ± {sd:.2f}" for mu, sd in zip(m.mean(0), m.std(0)))

    print(f"# {args.machine}, seeds {args.seeds}, {args.units} clips each; dB, mean ± std over the per-seed means")
    print("| kind | severity | alone: lowest 16 mels | alone: mels 16-127 | alone: largest band | alone: 1x line "
          "| alone: 0.5-3 kHz | alone: total power | mix: mean abs over 128 mels | mix: largest band |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in alone:
        print(f"| {key[0]} | {key[1]:g} | {fmt(alone, key)} | {fmt(mix, key)} |")
    print(f"# wall {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
