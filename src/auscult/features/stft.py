"""STFT magnitude as a torch module, with a ``torch.stft`` path and an ONNX-friendly Conv1d path."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .config import FeatureConfig, FeatureInputError

_CACHE: dict[tuple[Any, ...], torch.Tensor] = {}


def _cached(key: tuple[Any, ...], build) -> torch.Tensor:
    """Per-(parameters, device, dtype) cache of constant tensors (windows, bases, filterbanks)."""
    tensor = _CACHE.get(key)
    if tensor is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        tensor = _CACHE[key] = build()
    return tensor


def hann_window(config: FeatureConfig, dtype=torch.float32, device=None) -> torch.Tensor:
    """Periodic Hann window of ``win_length``, zero-padded (centered) to ``n_fft``."""
    n, win = config.n_fft, config.window_length

    def build() -> torch.Tensor:
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
        full = np.zeros(n)
        left = (n - win) // 2
        full[left:left + win] = w
        return torch.as_tensor(full, dtype=dtype, device=device)

    return _cached(("hann", n, win, dtype, str(device)), build)


def dft_basis(config: FeatureConfig, dtype=torch.float32, device=None) -> torch.Tensor:
    """Conv1d weight ``[2 * n_freqs, 1, n_fft]``: Hann-windowed cosines, then negated sines.

    Row ``k`` (``k < n_freqs``) convolved with a frame gives the real part of DFT bin ``k``;
    row ``n_freqs + k`` gives its imaginary part. Built in float64, then cast.
    """
    n = config.n_fft

    def build() -> torch.Tensor:
        w = hann_window(config, torch.float64).numpy()
        k = np.arange(config.n_freqs)[:, None]
        t = np.arange(n)[None, :]
        phase = 2.0 * np.pi * ((k * t) % n) / n  # reduce k*t mod n for an exact phase
        basis = np.concatenate([np.cos(phase) * w, -np.sin(phase) * w], axis=0)
        return torch.as_tensor(basis[:, None, :], dtype=dtype, device=device)

    return _cached(("dft", n, config.window_length, dtype, str(device)), build)


def as_batch(x: torch.Tensor | np.ndarray, what: str = "waveform") -> tuple[torch.Tensor, bool]:
    """Accept ``[T]``, ``[B, T]`` or ``[B, 1, T]``; return ``([B, T] float tensor, was_1d)``."""
    if isinstance(x, np.ndarray):
        # read-only arrays (memory-mapped caches) are copied: torch cannot wrap them safely
        x = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else np.array(x))
    if not isinstance(x, torch.Tensor):
        raise FeatureInputError(f"{what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise FeatureInputError(
            f"{what} has dtype {x.dtype}; convert it to float first (e.g. auscult.audio.load_audio "
            "returns float32 in [-1, 1])"
        )
    squeeze = x.dim() == 1
    if squeeze:
        x = x.unsqueeze(0)
    elif x.dim() == 3:
        if x.shape[1] != 1:
            raise FeatureInputError(
                f"{what} of shape {tuple(x.shape)} has {x.shape[1]} channels; front-ends take mono "
                "[B, 1, T] (mix or pick a channel first: AudioConfig.channel 'mean', 'near', 'far' or an "
                "index; 'both' is for methods that take two channels)"
            )
        x = x[:, 0]
    elif x.dim() != 2:
        raise FeatureInputError(f"{what} of shape {tuple(x.shape)}: expected [T], [B, T] or [B, 1, T]")
    if x.shape[-1] == 0:
        raise FeatureInputError(f"{what} of shape {tuple(x.shape)} has no samples")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x, squeeze


def _abs2(spec: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` of a complex tensor as ``re*re + im*im`` (one fused pass; ``abs()**2`` and
    ``view_as_real(z).pow(2).sum(-1)`` measured 3-7x slower on CPU)."""
    return spec.real.square().addcmul_(spec.imag, spec.imag)


class Spectrogram(nn.Module):
    """``|STFT(x)| ** power`` of a batch of waveforms: ``[B, T] -> [B, n_fft//2 + 1, frames]``.

    ``config.stft_impl`` picks ``torch.stft`` or a strided Conv1d with a fixed DFT basis
    (exportable to ONNX; reflect padding is ``F.pad(mode="reflect")``, an ONNX ``Pad`` op).
    ``power`` overrides ``config.power`` when given.
    """

    def __init__(self, config: FeatureConfig | None = None, power: float | None = None):
        super().__init__()
        self.config = config or FeatureConfig()
        self.power = float(self.config.power if power is None else power)
        if not self.power > 0:
            raise ConfigError(f"Spectrogram power={power!r} must be positive (1 = magnitude, 2 = power)")
        self.register_buffer("window", hann_window(self.config), persistent=False)
        if self.config.stft_impl == "conv":
            self.register_buffer("basis", dft_basis(self.config), persistent=False)

    def _check_length(self, n_samples: int) -> None:
        c = self.config
        if c.center and c.pad_mode == "reflect" and n_samples <= c.n_fft // 2:
            raise FeatureInputError(
                f"a clip of {n_samples} samples is too short for reflect padding of {c.n_fft // 2}; "
                "use pad_mode='constant' or clips longer than n_fft // 2"
            )
        if not c.center and n_samples < c.n_fft:
            raise FeatureInputError(
                f"a clip of {n_samples} samples is shorter than one frame (n_fft={c.n_fft}) "
                "with center=False"
            )

    def power_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """``|STFT|^2`` of a ``[B, T]`` float batch."""
        c = self.config
        self._check_length(int(x.shape[-1]))
        if c.stft_impl == "conv":
            frames = x.unsqueeze(1)
            if c.center:
                pad = c.n_fft // 2
                frames = F.pad(frames, (pad, pad), mode=c.pad_mode)
            basis = self.basis if x.dtype == self.basis.dtype else dft_basis(c, x.dtype, x.device)
            out = F.conv1d(frames, basis, stride=c.hop_length)
            re, im = out[:, : c.n_freqs], out[:, c.n_freqs:]
            return re * re + im * im  # plain ops: these export to ONNX
        if x.device.type == "cpu":
            return self.frame_power(x).transpose(1, 2).contiguous()
        dtype = x.dtype
        if c.stft_precision == "float64" and dtype == torch.float32 and x.device.type != "mps":
            x = x.double()
        spec = torch.stft(
            x, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft,
            window=hann_window(c, x.dtype, x.device), center=c.center, pad_mode=c.pad_mode,
            normalized=False, onesided=True, return_complex=True,
        )
        return _abs2(spec).to(dtype)

    def frame_power(self, x: torch.Tensor) -> torch.Tensor:
        """``|STFT|^2`` of a ``[B, T]`` float batch, frame-major: ``[B, frames, n_fft//2 + 1]``.

        On CPU with ``stft_impl="torch"`` this is the lean path: frames are strided views of the (padded)
        waveform, multiplied by the window into one buffer, then one batched ``rfft`` and
        ``re*re + im*im``. It computes what ``torch.stft`` does with fewer passes over memory
        (and in the layout the mel product wants). Other devices and the conv path return
        :meth:`power_spectrum` transposed (a view).
        """
        c = self.config
        self._check_length(int(x.shape[-1]))
        if c.stft_impl == "conv" or x.device.type != "cpu":
            return self.power_spectrum(x).transpose(1, 2)
        dtype = x.dtype
        if c.stft_precision == "float64" and dtype == torch.float32 and x.device.type != "mps":
            x = x.double()
        spec = self._rfft_frames(x)
        return _abs2(spec).to(dtype)

    def frame_power_pairs(self, x: torch.Tensor) -> torch.Tensor:
        """The squared real and imaginary parts of the STFT, interleaved, frame-major:
        ``[B, frames, 2 * n_freqs]`` with ``re(k)**2`` at ``2k`` and ``im(k)**2`` at ``2k + 1`` (CPU,
        ``stft_impl="torch"``, no autograd). Summing each pair gives :meth:`frame_power`; a linear map
        of the power spectrum (the mel filterbank) can do that sum itself with every weight repeated
        twice, which saves the strided ``re*re + im*im`` pass (``LogMel`` does; ~20 % less time)."""
        c = self.config
        self._check_length(int(x.shape[-1]))
        dtype = x.dtype
        if c.stft_precision == "float64" and dtype == torch.float32:
            x = x.double()
        spec = self._rfft_frames(x)
        pairs = torch.view_as_real(spec).flatten(-2).square_()
        return pairs.to(dtype)

    def _rfft_frames(self, x: torch.Tensor) -> torch.Tensor:
        """``rfft`` of the centred (padded), Hann-windowed frames of ``x`` ``[B, T]``: ``[B, frames, n_freqs]``
        complex, in ``x``'s dtype (the CPU paths of :meth:`frame_power` and :meth:`frame_power_pairs`)."""
        c = self.config
        if c.center:
            pad = c.n_fft // 2
            if c.pad_mode == "constant":
                padded = x.new_zeros(x.shape[0], x.shape[1] + 2 * pad)
                padded[:, pad:pad + x.shape[1]] = x
            else:
                padded = F.pad(x.unsqueeze(1), (pad, pad), mode=c.pad_mode).squeeze(1)
        else:
            padded = x
        frames = padded.unfold(-1, c.n_fft, c.hop_length)  # a view: [B, frames, n_fft]
        return torch.fft.rfft(frames * hann_window(c, x.dtype, x.device), dim=-1)

    def _apply_power(self, power2: torch.Tensor) -> torch.Tensor:
        if self.power == 2.0:
            return power2
        if self.power == 1.0:
            return power2.sqrt_() if not power2.requires_grad else power2.sqrt()
        return power2.pow(self.power / 2.0)

    def frame_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """``|STFT(x)| ** power`` of a ``[B, T]`` float batch, frame-major ``[B, frames, n_freqs]``."""
        return self._apply_power(self.frame_power(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        out = self._apply_power(self.power_spectrum(x))
        return out[0] if squeeze else out
