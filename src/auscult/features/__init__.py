"""Feature front-ends as torch modules (batched, any device).

    from auscult.features import FeatureConfig, LogMel
    logmel = LogMel(FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=512, n_mels=128))
    feats = logmel(waveforms)          # [B, T] -> [B, 128, 1 + T // 512]

See ``docs/features.md`` for every front-end and its exact definition.
"""

from __future__ import annotations

from .config import FeatureConfig, FeatureInputError, n_frames
from .filterbank import hz_to_mel, mel_center_frequencies, mel_filterbank, mel_to_hz
from .frontends import (
    FRONTENDS,
    ClipSpectrum,
    FrameStack,
    LinearSpectrogram,
    LogMel,
    build_frontend,
    inverted_logmel,
    mel_filterbank_tensor,
    output_shape,
    to_db,
)
from .stft import Spectrogram, dft_basis, hann_window
from .bandstats import BandStats  # noqa: E402  (registers the 'bandstats' front-end)

__all__ = [
    "FRONTENDS",
    "BandStats",
    "ClipSpectrum",
    "FeatureConfig",
    "FeatureInputError",
    "FrameStack",
    "LinearSpectrogram",
    "LogMel",
    "Spectrogram",
    "build_frontend",
    "dft_basis",
    "hann_window",
    "hz_to_mel",
    "inverted_logmel",
    "mel_center_frequencies",
    "mel_filterbank",
    "mel_filterbank_tensor",
    "mel_to_hz",
    "n_frames",
    "output_shape",
    "to_db",
]
