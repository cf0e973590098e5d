"""Generated DCASE 2026 Task 2 trees (real 2026 clips are not available to the tests).

The layout and names follow the organisers' baseline README for 2026 (the 2022-2025 grammar with
a noise attribute in the tail, two-channel clips: left = near mic, right = far mic)::

    <root>/<machine>/train/section_00_{source|target}_train_normal_NNNN_<attrs>.wav
    <root>/<machine>/test/section_00_{source|target}_test_{normal|anomaly}_NNNN_<attrs>.wav   (dev)
    <root>/<machine>/test/section_00_NNNN.wav                                                 (eval)

The official counts are 990 source + 10 target training clips and 50 + 50 test clips per domain;
the tests use a few clips per group. Clip content is a constant per channel (FLOAT WAV), so a
clip's RMS on each channel is known exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

ATTRS = "car_A2_spd_28V_mic_1_noise_{noise}"


def write_clip(path: Path, near: float, far: Optional[float], n: int = 160, sr: int = 16000) -> Path:
    """A FLOAT WAV holding ``near`` on channel 0 and ``far`` on channel 1 (mono when ``far`` is None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if far is None:
        x = np.full(n, near, dtype=np.float32)
    else:
        x = np.stack([np.full(n, near, np.float32), np.full(n, far, np.float32)], axis=1)
    sf.write(path, x, sr, subtype="FLOAT")
    return path


def dev_tree(root: Path, machines=("ToyCar", "fan"), n_train=(4, 2), n_test=2, channels: int = 2) -> list[Path]:
    """A development-style tree; returns the written paths. Noise attribute: 1 for source, 2 for target."""
    paths = []
    for m in machines:
        for dom, k in zip(("source", "target"), n_train):
            noise = 1 if dom == "source" else 2
            for i in range(k):
                paths.append(write_clip(
                    root / m / "train" / f"section_00_{dom}_train_normal_{i:04d}_{ATTRS.format(noise=noise)}.wav",
                    0.1, 0.05 if channels == 2 else None))
            for lab in ("normal", "anomaly"):
                for i in range(n_test):
                    paths.append(write_clip(
                        root / m / "test" / f"section_00_{dom}_test_{lab}_{i:04d}_{ATTRS.format(noise=noise)}.wav",
                        0.3 if lab == "anomaly" else 0.1, 0.05 if channels == 2 else None))
    return paths
