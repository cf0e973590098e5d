"""Synthetic scored test sets for demos, docs and tests of the evaluation code.

:func:`demo_scored_clips` draws anomaly scores for DCASE-shaped test sets (per machine type and
section; source/target domains from 2021 on) with a controllable separation, so reports and
protocols can be exercised without a trained model. The numbers mean nothing about any method.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.clip import Clip

__all__ = ["demo_scored_clips"]


def demo_scored_clips(
    year: int = 2023,
    machines: Sequence[str] = ("fan", "valve", "ToyCar"),
    sections: Sequence[str] = ("00",),
    n_per_domain: int = 50,
    separation: float = 1.5,
    target_shift: float = 0.6,
    seed: int = 0,
) -> tuple[list[Clip], np.ndarray, np.ndarray]:
    """Labelled test clips with gamma-shaped anomaly scores and 0/1 decisions.

    Per (machine, section) and domain there are ``n_per_domain`` normal and ``n_per_domain``
    anomalous clips (2020: no domains, ``2 * n_per_domain`` of each). Anomalies score
    ``separation`` (in units of the normal spread, varied per machine) higher; target-domain
    normals are shifted up by ``target_shift`` (domain shift makes them look anomalous). The
    decisions use the 90th percentile of the source normals.

    Returns:
        ``(clips, scores, decisions)`` aligned by position; names follow the year's test naming.
    """
    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    scores: list[float] = []
    decisions: list[int] = []
    for mi, machine in enumerate(machines):
        sep = separation * (0.5 + rng.random())
        for section in sections:
            doms = [None] if year == 2020 else ["source", "target"]
            n = 2 * n_per_domain if year == 2020 else n_per_domain
            group_scores: list[float] = []
            group_clips: list[Clip] = []
            for dom in doms:
                shift = target_shift if dom == "target" else 0.0
                for label in ("normal", "anomaly"):
                    base = rng.gamma(4.0, 0.5, size=n) + shift
                    if label == "anomaly":
                        base = base + sep * 0.5 * np.sqrt(4.0) * rng.uniform(0.3, 1.7, size=n)
                    for k in range(n):
                        idx = len(group_clips)
                        if year == 2020:
                            name = f"{label}_id_{section}_{idx:08d}.wav"
                        elif year == 2021:
                            name = f"section_{section}_{dom}_test_{label}_{idx:04d}.wav"
                        else:
                            name = f"section_{section}_{dom}_test_{label}_{idx:04d}_demo.wav"
                        group_clips.append(
                            Clip(path=Path(machine) / "test" / name, machine=machine, section=section,
                                 domain=dom, split="test", label=label, year=year)
                        )
                        group_scores.append(float(base[k]))
            s = np.array(group_scores)
            src_normal = np.array([c.label == "normal" and c.domain in (None, "source") for c in group_clips])
            thr = np.percentile(s[src_normal], 90)
            clips += group_clips
            scores += group_scores
            decisions += [int(v > thr) for v in s]
    return clips, np.asarray(scores), np.asarray(decisions, dtype=np.int64)
