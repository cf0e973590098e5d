"""The difficulty probe: a simple detector every generated dataset is measured with.

Per section, fit a Gaussian (Ledoit-Wolf shrinkage) on the clip-mean log-mel of the training
normals and score test clips by their Mahalanobis distance. The per-machine AUC is written into the
dataset card; the default severity distribution is calibrated so that it lands roughly in
0.6–0.85 on most machines, leaving room above it for real methods.

The log-mel here is a small numpy implementation (Hann window, HTK mel scale, power spectrum,
``log(mel + 1e-8)``) so the simulator does not depend on the feature front-ends.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def mel_matrix(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-mel filterbank ``[n_mels, n_fft // 2 + 1]`` from 0 Hz to Nyquist."""
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel2hz(np.linspace(hz2mel(0.0), hz2mel(sr / 2.0), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.maximum(0.0, np.minimum(up, down))


def log_mel(x: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 512, n_mels: int = 128) -> np.ndarray:
    """Log-mel spectrogram ``[n_mels, frames]`` of a mono signal (centred frames, reflect padding)."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.fft import rfft

    x = np.asarray(x, dtype=np.float32)
    pad = n_fft // 2
    xp = np.pad(x, pad, mode="reflect") if len(x) > pad else np.pad(x, pad)
    n_frames = 1 + len(x) // hop
    if len(xp) < n_fft + hop * (n_frames - 1):
        xp = np.pad(xp, (0, n_fft + hop * (n_frames - 1) - len(xp)))
    frames = sliding_window_view(xp, n_fft)[::hop][:n_frames] * _hann(n_fft)
    spec = rfft(frames, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = power @ mel_matrix(sr, n_fft, n_mels).T.astype(np.float32)
    return np.log(mel.T.astype(np.float64) + 1e-8)


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return np.hanning(n + 1)[:-1].astype(np.float32)


def clip_feature(x: np.ndarray, sr: int) -> np.ndarray:
    """The probe's feature: time-averaged log-mel (128 values)."""
    return log_mel(x, sr).mean(axis=1).astype(np.float32)


def mahalanobis_auc(train: np.ndarray, test: np.ndarray, labels: np.ndarray) -> float:
    """AUC of the Ledoit-Wolf Mahalanobis distance (train normals → test clips, 1 = anomaly)."""
    from sklearn.covariance import LedoitWolf
    from sklearn.metrics import roc_auc_score

    lw = LedoitWolf().fit(train)
    scores = lw.mahalanobis(test)
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def probe(rows: list[dict], features: np.ndarray) -> dict:
    """Per-machine (and per-domain) AUC of the probe.

    ``rows`` are metadata rows (machine, section, domain, split, label), aligned with
    ``features``. Each section gets its own model; AUCs are computed per section and averaged
    per machine, as the DCASE protocol averages sections.
    """
    out: dict[str, dict] = {}
    machines = sorted({r["machine"] for r in rows})
    for mach in machines:
        per = {"all": [], "source": [], "target": []}
        for sec in sorted({r["section"] for r in rows if r["machine"] == mach}):
            sel = [i for i, r in enumerate(rows) if r["machine"] == mach and r["section"] == sec]
            tr = [i for i in sel if rows[i]["split"] == "train"]
            te = [i for i in sel if rows[i]["split"] == "test"]
            if len(tr) < 2 or not te:
                continue
            y = np.array([rows[i]["label"] == "anomaly" for i in te], dtype=int)
            per["all"].append(mahalanobis_auc(features[tr], features[te], y))
            for dom in ("source", "target"):
                te_d = [i for i in te if rows[i]["domain"] == dom]
                if te_d:
                    yd = np.array([rows[i]["label"] == "anomaly" for i in te_d], dtype=int)
                    per[dom].append(mahalanobis_auc(features[tr], features[te_d], yd))
        out[mach] = {k: (float(np.nanmean(v)) if v else float("nan")) for k, v in per.items()}
    return out
