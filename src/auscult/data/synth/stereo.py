"""Two-microphone recording chain for the DCASE 2026 layout (near mic = channel 0, far mic = channel 1).

DCASE 2026 Task 2 clips are stereo: the left channel is a microphone close to the machine (what
earlier years' mono clips were), the right channel a microphone farther away that hears the same
machine through more background. :func:`render_stereo_clip` records one machine rendering
(:func:`auscult.data.synth.render.render_clip` without background: the machine at the near mic's
reference level) with two microphones in one room:

* **distance**: the near mic sits ``NEAR_DISTANCE_M`` (0.5 m) from the machine, the far mic
  ``r_far`` = 1.5-3 m (drawn per clip). The direct sound falls as ``1/r`` and reaches the far
  mic ``(r_far - r_near) / 343`` s later (a fractional delay, applied in the frequency domain with
  zero padding, so nothing wraps around); air absorbs a little more of the highs on the longer path.
* **reverberation**: both mics hear the room's reverberant field at the same level (a diffuse
  field does not depend on distance): exponentially decaying noise impulse responses, one per mic
  (independent: the two mics are metres apart), RT60 per domain (the factory). With a critical
  distance of ``CRITICAL_DISTANCE_M`` the direct-to-reverberant ratio is ``20 log10(r_c / r)``:
  about +8 dB at the near mic and -1.6 to -7.6 dB at the far one.
* **background**: the domain's factory noise (:mod:`.background`), mixed at the near mic at the
  domain's SNR plus the clip's *noise condition* (the ``noise`` attribute in the file name), and
  ``far_excess_db`` (1-3 dB) louder at the far mic (it stands nearer the rest of the hall). The two
  mics' backgrounds are partly coherent: a shared component (with a random inter-mic delay, as from
  a distant source) of power fraction ``coherence`` plus one independent component per mic.

The per-clip randomness derives only from the clip seed (streams ``stereo``/``noise``), so the
same seed gives identical bytes, and :func:`noise_condition` can name a clip before rendering it.
Every quantity above is returned in :class:`StereoInfo` (the writer keeps both SNRs in
``metadata.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import dsp
from .background import PROFILES, render_background
from .base import clip_snr_db
from .render import ClipInfo, render_clip, seed_sequence

#: distance machine -> near microphone (the reference of the mono simulator's level), metres
NEAR_DISTANCE_M = 0.5
#: range of the machine -> far microphone distance, metres
FAR_DISTANCE_M = (1.5, 3.0)
#: distance at which direct and reverberant sound are equally loud, metres
CRITICAL_DISTANCE_M = 1.25
SPEED_OF_SOUND = 343.0
#: reverberation time per domain (source: ventilated hall, target: press shop), seconds
RT60_S = {"source": 0.6, "target": 0.9}
#: background level of each noise condition relative to the domain's SNR (dB more background);
#: the condition is the ``noise_<k>`` attribute of the file name
NOISE_CONDITIONS: dict[int, float] = {1: -3.0, 2: 0.0, 3: 4.0}
#: the far mic's extra background, dB (uniform range)
FAR_EXCESS_DB = (1.0, 3.0)
#: power fraction of the background shared by both mics (uniform range)
COHERENCE = (0.3, 0.6)
#: air absorption, dB per metre at 8 kHz (scaled with (f / 8 kHz)^1.5)
AIR_DB_PER_M_8K = 0.1


def noise_condition(clip_seed: int, machine: str) -> int:
    """The clip's noise condition (a key of :data:`NOISE_CONDITIONS`), from its seed alone."""
    rng = np.random.default_rng(seed_sequence(clip_seed, "noise", machine))
    keys = sorted(NOISE_CONDITIONS)
    return int(keys[int(rng.integers(len(keys)))])


@dataclass
class StereoInfo:
    """The recording chain of one stereo clip (besides the machine's :class:`ClipInfo`)."""

    noise: int
    snr_near_db: float
    snr_far_db: float
    far_distance_m: float
    delay_ms: float
    rt60_s: float
    far_excess_db: float
    coherence: float
    drr_near_db: float
    drr_far_db: float


def _delay(x: np.ndarray, samples: float) -> np.ndarray:
    """``x`` delayed by a (fractional) number of samples, zero-padded (nothing wraps around)."""
    n = len(x)
    pad = int(np.ceil(samples)) + 64
    m = n + pad
    spec = np.fft.rfft(x, m)
    f = np.fft.rfftfreq(m)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * f * samples), m)[:n]


def _air(x: np.ndarray, sr: int, metres: float) -> np.ndarray:
    """Extra high-frequency loss of ``metres`` of air."""
    if metres <= 0:
        return x
    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    db = AIR_DB_PER_M_8K * metres * (f / 8000.0) ** 1.5
    return np.fft.irfft(np.fft.rfft(x) * 10.0 ** (-db / 20.0), n)


def _room_ir(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A unit-energy late-reverberation impulse response (decaying noise, 5 ms pre-delay)."""
    from scipy.signal import butter, sosfilt

    length = int(min(rt60, 1.2) * sr)
    t = np.arange(length) / sr
    h = rng.standard_normal(length) * np.exp(-6.91 * t / rt60)
    # walls absorb highs faster: a gentle low-pass on the tail
    h = sosfilt(butter(2, min(6000.0, 0.45 * sr), fs=sr, output="sos"), h)
    h = np.concatenate([np.zeros(int(0.005 * sr)), h])
    return h / (np.sqrt(np.sum(h ** 2)) + 1e-12)


def _reverb(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(x, h)[:len(x)]


def render_stereo_clip(machine: str, params: Optional[dict] = None, anomaly: Optional[str] = None,
                       severity: float = 1.0, seed: int = 0, *, domain: Optional[str] = "source",
                       unit: Optional[dict] = None, sample_rate: int = 16000, duration: float = 10.0,
                       background: bool = True, noise: Optional[int] = None,
                       return_info: bool = False):
    """Render one clip as float32 ``[n, 2]`` audio (column 0 near mic, column 1 far mic).

    Arguments as :func:`~auscult.data.synth.render.render_clip`; ``noise`` fixes the noise
    condition (default: drawn from ``seed`` by :func:`noise_condition`). With ``return_info`` also
    returns ``(ClipInfo, StereoInfo)``; ``ClipInfo.snr_db`` is the near mic's SNR.
    """
    from ...errors import ConfigError

    dry, info = render_clip(machine, params, anomaly, severity, seed, domain=domain, unit=unit,
                            sample_rate=sample_rate, duration=duration, background=False, return_info=True)
    if noise is None:
        noise = noise_condition(seed, machine)
    if noise not in NOISE_CONDITIONS:
        raise ConfigError(f"noise condition must be one of {sorted(NOISE_CONDITIONS)}, got {noise!r}")
    dom = domain if domain in ("source", "target") else "source"
    rng = np.random.default_rng(seed_sequence(seed, "stereo", machine))
    # draws in a fixed order, whatever ``background`` says, so the machine part never depends on it
    r_far = float(rng.uniform(*FAR_DISTANCE_M))
    far_excess = float(rng.uniform(*FAR_EXCESS_DB))
    coherence = float(rng.uniform(*COHERENCE))
    u_clip = float(rng.uniform())  # where this clip's background level sits around the unit's own
    rt60 = RT60_S[dom] * float(rng.uniform(0.9, 1.1))
    h_near, h_far = _room_ir(sample_rate, rt60, rng), _room_ir(sample_rate, rt60, rng)
    s = dry.astype(np.float64)
    n = len(s)
    delay = (r_far - NEAR_DISTANCE_M) / SPEED_OF_SOUND * sample_rate
    g_rev = NEAR_DISTANCE_M / CRITICAL_DISTANCE_M  # reverberant field relative to the near direct sound
    direct_far = _air(_delay(s, delay), sample_rate, r_far - NEAR_DISTANCE_M) * (NEAR_DISTANCE_M / r_far)
    rev_near, rev_far = g_rev * _reverb(s, h_near), g_rev * _reverb(s, h_far)
    near_m, far_m = s + rev_near, direct_far + rev_far
    # the unit's microphone place in the domain's SNR range, +- a few dB per clip (as the mono clips)
    snr_near = clip_snr_db(unit or {}, PROFILES[dom].snr_db, u_clip) - NOISE_CONDITIONS[noise]
    ref = dsp.rms(near_m) + 1e-12
    bg_level = ref * 10.0 ** (-snr_near / 20.0)
    far_bg_level = bg_level * 10.0 ** (far_excess / 20.0)
    rng_bg = np.random.default_rng(seed_sequence(seed, "stereo-background", machine))
    common = render_background(n, sample_rate, rng_bg, PROFILES[dom])
    own_near = render_background(n, sample_rate, rng_bg, PROFILES[dom])
    own_far = render_background(n, sample_rate, rng_bg, PROFILES[dom])
    spacing = (r_far - NEAR_DISTANCE_M) / SPEED_OF_SOUND * sample_rate
    tdoa = float(rng_bg.uniform(-spacing, spacing))
    a, b = np.sqrt(coherence), np.sqrt(1.0 - coherence)
    bg_near = a * _delay(common, max(0.0, -tdoa)) + b * own_near
    bg_far = a * _delay(common, max(0.0, tdoa)) + b * own_far
    bg_near *= bg_level / (dsp.rms(bg_near) + 1e-12)
    bg_far *= far_bg_level / (dsp.rms(bg_far) + 1e-12)
    snr_far = 20.0 * np.log10((dsp.rms(far_m) + 1e-12) / far_bg_level)
    if background:
        near, far = near_m + bg_near, far_m + bg_far
    else:
        near, far = near_m, far_m
    x = np.stack([near, far], axis=1)
    peak = float(np.max(np.abs(x))) if n else 0.0
    limited = peak > 0.99
    if limited:  # one gain for both channels: the level difference between the mics stays
        x *= 0.99 / peak
    audio = x.astype(np.float32)
    if not return_info:
        return audio
    info.params = {**info.params, "attrs": list(info.attrs) + [("noise", str(noise))]}
    info.snr_db = round(float(snr_near), 2) if background else float("inf")
    info.peak_limited = bool(info.peak_limited or limited)
    drr = lambda r: round(float(20.0 * np.log10(CRITICAL_DISTANCE_M / r)), 2)  # noqa: E731
    st = StereoInfo(noise=int(noise), snr_near_db=info.snr_db,
                    snr_far_db=round(float(snr_far), 2) if background else float("inf"),
                    far_distance_m=round(r_far, 3), delay_ms=round(delay / sample_rate * 1000.0, 3),
                    rt60_s=round(rt60, 3), far_excess_db=round(far_excess, 2), coherence=round(coherence, 3),
                    drr_near_db=drr(NEAR_DISTANCE_M), drr_far_db=drr(r_far))
    return audio, (info, st)


__all__ = ["render_stereo_clip", "noise_condition", "StereoInfo", "NOISE_CONDITIONS", "NEAR_DISTANCE_M",
           "FAR_DISTANCE_M", "CRITICAL_DISTANCE_M", "RT60_S"]
