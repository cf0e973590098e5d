"""Feature front-ends: log-mel, inverted log-mel, linear spectrogram, clip spectrum, frame stacks.

Every front-end is a plain ``nn.Module`` taking waveforms ``[B, T]`` (or ``[T]`` / ``[B, 1, T]``)
on any device and returning float features on the same device. Constant tensors (window,
DFT basis, filterbank) are non-persistent buffers: they follow ``.to(device)`` but stay out
of ``state_dict``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .config import FeatureConfig, FeatureInputError
from .filterbank import mel_filterbank
from .stft import Spectrogram, _cached, as_batch

FRONTENDS = Registry("frontend")


def to_db(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``10 * log10(max(x, eps))`` elementwise."""
    return 10.0 * torch.log10(torch.clamp(x, min=eps))


def _to_db_(x: torch.Tensor, eps: float) -> torch.Tensor:
    """:func:`to_db` in place (no temporaries); for tensors that need no gradient."""
    return x.clamp_(min=eps).log10_().mul_(10.0)


def mel_filterbank_tensor(config: FeatureConfig, dtype=torch.float32, device=None) -> torch.Tensor:
    """:func:`mel_filterbank` as a torch tensor, cached per (config, dtype, device)."""
    key = ("mel", config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.mel_fmax,
           config.mel_scale, config.norm, config.inverted, dtype, str(device))
    return _cached(key, lambda: torch.tensor(np.array(mel_filterbank(config)), dtype=dtype, device=device))


def _exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting()
                or (hasattr(torch, "onnx") and torch.onnx.is_in_onnx_export()))


#: CPU batches are processed in chunks of about this many samples (one 10 s clip at 16 kHz):
#: a chunk's frames, spectrum and power stay in cache, which measured ~2x less CPU time than
#: one pass over 32 x 10 s clips.
CPU_CHUNK_SAMPLES = 1 << 18

_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A private thread pool, rebuilt after ``fork`` (data-loader workers) or a thread change."""
    global _POOL, _POOL_KEY
    key = (os.getpid(), workers)
    if _POOL is None or _POOL_KEY != key:
        if _POOL is not None and _POOL_KEY is not None and _POOL_KEY[0] == key[0]:
            _POOL.shutdown(wait=False)  # thread count changed: let the old workers exit
        # one intra-op thread in each worker: OpenMP's thread count is per OS thread, so a fresh worker
        # would otherwise run every op on the default team (all cores) -- two workers x two OpenMP
        # threads on two cores measured 3x the CPU time of one core
        _POOL = ThreadPoolExecutor(workers, thread_name_prefix="auscult-features", initializer=torch.set_num_threads,
                                   initargs=(1,))
        _POOL_KEY = key
    return _POOL


#: Spread CPU chunks over ``torch.get_num_threads()`` worker threads (True) or run them one after the
#: other on one core (False, default). Each worker runs its ops on one OpenMP thread (set in the
#: worker: OpenMP's thread count is per OS thread). Measured on a quiet 2-core AVX-512 VM (load
#: 0.9, 32 x 10 s clips, ``benchmarks/bench_features.py --repeats 5``, 2026-12-07): with 2 threads the
#: pool took 22.6 ms per batch, one core 18.2 ms (power then mel) / 16.2 ms (paired); with 1 thread
#: they are equal. (Under heavy load, load average ~7, the pool had measured 35 vs 72 ms: it pays
#: only when the other core would otherwise idle while this one waits, not on a quiet machine.)
CPU_THREAD_POOL = False


def _in_chunks(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` computed chunk by chunk on CPU, each chunk's ops on one intra-op thread.

    Chunks of :data:`CPU_CHUNK_SAMPLES` keep every intermediate in cache. Torch's intra-op
    thread count is set to 1 for the duration of the call and restored afterwards (OpenMP
    regions over cache-sized chunks cost more than they gain, and are far slower on a busy
    machine); other threads of the process running torch ops meanwhile see one intra-op
    thread. With :data:`CPU_THREAD_POOL` the chunks run on ``torch.get_num_threads()`` worker
    threads. A second concurrent call runs its chunks serially with the current settings;
    autograd, tracing/export and other devices take one plain pass.
    """
    batch, n_samples = x.shape
    per_chunk = max(1, CPU_CHUNK_SAMPLES // n_samples)
    if x.device.type != "cpu" or batch <= per_chunk or x.requires_grad or _exporting():
        return fn(x)
    parts = x.split(per_chunk)
    threads = torch.get_num_threads()
    if threads <= 1 or not _POOL_LOCK.acquire(blocking=False):
        return torch.cat([fn(part) for part in parts])
    try:
        torch.set_num_threads(1)
        try:
            outs = list(_pool(threads).map(fn, parts)) if CPU_THREAD_POOL else [fn(part) for part in parts]
        finally:
            torch.set_num_threads(threads)
    finally:
        _POOL_LOCK.release()
    return torch.cat(outs)


#: Mel bands per block of the banded CPU mel product.
MEL_BLOCK = 16


def _mel_blocks(config: FeatureConfig, dense: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """The filterbank cut into blocks of :data:`MEL_BLOCK` bands, each with the contiguous
    range of STFT bins its triangles touch: ``[(k0, k1, weights [k1 - k0, bands])]``."""
    key = ("mel-blocks", config.sample_rate, config.n_fft, config.n_mels, config.fmin,
           config.mel_fmax, config.mel_scale, config.norm, config.inverted, dense.dtype)

    def build():
        blocks = []
        for m0 in range(0, dense.shape[0], MEL_BLOCK):
            sub = dense[m0:m0 + MEL_BLOCK]
            used = torch.nonzero(sub.abs().sum(0)).flatten()
            k0, k1 = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
            blocks.append((k0, k1, sub[:, k0:k1].t().contiguous()))
        return blocks

    return _cached(key, build)


#: CPU log-mel from the interleaved squared STFT (:meth:`Spectrogram.frame_power_pairs`) with the
#: banded filterbank's weights repeated per real/imaginary pair, computed mel-major (no transpose
#: pass). False = the power spectrum first, then the banded product (the previous path, kept for
#: comparison in ``benchmarks/bench_features.py``). Same sums, float rounding apart (both within
#: 4.8e-4 dB of librosa in float64). On by default: 1.13x on one core (quiet machine: 15.7 vs 17.8 ms
#: per 32 x 10 s batch). It had been made opt-in because its ~1e-4 dB rounding difference moved a CLSIA
#: quality test across its bar; that test turned out to be a seed lottery (0.611 +- 0.106 over 8
#: training seeds) and was replaced (tests/methods/test_clsia.py).
CPU_PAIRED_MEL = True


def _mel_pair_blocks(config: FeatureConfig, dense: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """:func:`_mel_blocks` for interleaved ``(re^2, im^2)`` pairs: ``[(2 k0, 2 k1, weights
    [bands, 2 (k1 - k0)])]``, each bin's weight repeated for its two squares."""
    key = ("mel-pair-blocks", config.sample_rate, config.n_fft, config.n_mels, config.fmin,
           config.mel_fmax, config.mel_scale, config.norm, config.inverted, dense.dtype)

    def build():
        return [(2 * k0, 2 * k1, w.t().repeat_interleave(2, dim=1).contiguous())
                for k0, k1, w in _mel_blocks(config, dense)]

    return _cached(key, build)


@FRONTENDS.register("logmel", description="log-mel spectrogram [B, n_mels, frames] (librosa-equal)")
class LogMel(nn.Module):
    """Log-mel spectrogram: ``10*log10(max(mel_fb @ |STFT(x)|**power, eps))``.

    Output ``[B, n_mels, 1 + T // hop_length]`` (centered frames). With the default config this
    equals ``librosa.power_to_db(librosa.feature.melspectrogram(y, sr=16000, n_fft=1024,
    hop_length=512, n_mels=128), ref=1.0, amin=1e-10, top_db=None)`` within 1e-3 dB.
    ``config.inverted=True`` gives the inverted (mirrored) log-mel. ``log=False`` returns the
    linear mel energies.
    """

    def __init__(self, config: FeatureConfig | None = None, log: bool = True):
        super().__init__()
        self.config = config or FeatureConfig()
        self.log = bool(log)
        self.spectrogram = Spectrogram(self.config)
        self.register_buffer("filterbank", mel_filterbank_tensor(self.config), persistent=False)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features (no batch axis)."""
        return (self.config.n_mels, self.config.frames(n_samples))

    def _mel(self, power: torch.Tensor) -> torch.Tensor:
        """Mel energies ``[B, n_mels, frames]`` of a frame-major power spectrum ``[B, frames, n_freqs]``."""
        fb = self.filterbank.to(power.dtype)
        if power.device.type != "cpu" or _exporting():
            return torch.matmul(power, fb.t()).transpose(1, 2)
        # CPU: every STFT bin feeds at most two triangles, so the filterbank is >95% zeros;
        # blocks of bands times only the bins they touch do the same sums ~5x faster than a
        # dense matmul (and faster than a CSR product).
        parts = [torch.matmul(power[..., k0:k1], w) for k0, k1, w in _mel_blocks(self.config, fb)]
        return torch.cat(parts, dim=-1).transpose(1, 2)

    def _paired(self, x: torch.Tensor) -> bool:
        return (CPU_PAIRED_MEL and x.device.type == "cpu" and self.spectrogram.power == 2.0
                and not (x.requires_grad and torch.is_grad_enabled()) and not _exporting())

    def _mel_from_pairs(self, pairs: torch.Tensor) -> torch.Tensor:
        """Mel energies ``[B, n_mels, frames]`` from :meth:`Spectrogram.frame_power_pairs`, computed
        mel-major (``weights [bands, K] @ pairs^T [K, frames]`` per block of bands)."""
        fb = self.filterbank.to(pairs.dtype)
        cols = pairs.transpose(-1, -2)  # [B, 2 n_freqs, frames], a view
        return torch.cat([torch.matmul(w, cols[:, k0:k1]) for k0, k1, w in _mel_pair_blocks(self.config, fb)], dim=-2)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.stft_impl == "conv":  # ONNX path: plain ops only
            mel = torch.matmul(self.filterbank.to(x.dtype), self.spectrogram(x))
            return to_db(mel, self.config.eps) if self.log else mel
        if self._paired(x):
            mel = self._mel_from_pairs(self.spectrogram.frame_power_pairs(x))
            return _to_db_(mel, self.config.eps) if self.log else mel
        mel = self._mel(self.spectrogram.frame_spectrum(x))
        if self.log:
            mel = to_db(mel, self.config.eps) if mel.requires_grad else _to_db_(mel, self.config.eps)
        return mel.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        if self.config.stft_impl == "conv":  # one dense conv: torch's threads help it (2x)
            out = self._forward(x)
        else:
            out = _in_chunks(self._forward, x)
        return out[0] if squeeze else out


@FRONTENDS.register("inverted_logmel", description="log-mel with the filterbank mirrored (fine at high frequencies)")
def inverted_logmel(config: FeatureConfig | None = None, log: bool = True) -> LogMel:
    """:class:`LogMel` with ``inverted=True`` (see :func:`auscult.features.mel_filterbank`)."""
    return LogMel((config or FeatureConfig()).replace(inverted=True), log=log)


@FRONTENDS.register("linear", description="linear-frequency STFT magnitude [B, n_fft//2+1, frames]")
class LinearSpectrogram(nn.Module):
    """Linear-frequency spectrogram ``|STFT(x)| ** power`` with optional normalisation.

    ``power=1.0`` (default) is the magnitude; ``power=None`` uses ``config.power``.
    ``log=True`` applies ``10*log10(max(x, eps))``. ``mean_norm=True`` (temporal mean
    normalisation) subtracts each frequency bin's mean over the frames of its own clip,
    after the optional log. ``normalized=True`` divides the complex STFT by
    ``sqrt(sum(window ** 2))`` before the power, as torchaudio's ``Spectrogram(normalized=True)``
    does (the DCASE ASD toolkit's STFT). Output ``[B, n_fft // 2 + 1, frames]``.
    """

    def __init__(self, config: FeatureConfig | None = None, power: float | None = 1.0,
                 mean_norm: bool = False, log: bool = False, normalized: bool = False):
        super().__init__()
        self.config = config or FeatureConfig()
        self.mean_norm = bool(mean_norm)
        self.log = bool(log)
        self.normalized = bool(normalized)
        self.spectrogram = Spectrogram(self.config, power=power)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features (no batch axis)."""
        return (self.config.n_freqs, self.config.frames(n_samples))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        out = _in_chunks(self.spectrogram, x)
        if self.normalized:
            w = self.spectrogram.window
            out = out / w.double().pow(2).sum().sqrt().pow(self.spectrogram.power).to(out.dtype)
        if self.log:
            out = to_db(out, self.config.eps)
        if self.mean_norm:
            out = out - out.mean(dim=-1, keepdim=True)
        return out[0] if squeeze else out


@FRONTENDS.register("spectrum", description="whole-clip magnitude spectrum |rfft(x)| [B, T//2+1]")
class ClipSpectrum(nn.Module):
    """Magnitude spectrum of the whole clip, ``|rfft(x)| ** power``: ``[B, T] -> [B, T // 2 + 1]``.

    ``keep_nyquist=False`` keeps bins ``0 .. T//2 - 1`` only (``[B, T // 2]``), the input of the
    dual-branch net (``auscult.nets.dualbranch``).

    No window, no framing (as in the spectrum branch of dual-branch ASD systems). ``log=True``
    applies ``10*log10(max(x, eps))``. ``config`` only supplies ``eps``; the length follows T.
    The FFT of float32 input always runs in float64 (one FFT per clip, so it is cheap): a
    float32 FFT over a whole clip has per-bin rounding errors above 1e-3 dB even on recordings,
    as nothing averages them the way a mel band does.
    """

    def __init__(self, config: FeatureConfig | None = None, power: float = 1.0, log: bool = False,
                 keep_nyquist: bool = True):
        super().__init__()
        if not power > 0:
            raise ConfigError(f"ClipSpectrum power={power!r} must be positive")
        self.config = config or FeatureConfig()
        self.power = float(power)
        self.log = bool(log)
        self.keep_nyquist = bool(keep_nyquist)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features (no batch axis)."""
        return (n_samples // 2 + 1 if self.keep_nyquist else n_samples // 2,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        dtype = x.dtype
        if dtype == torch.float32 and x.device.type != "mps":
            x = x.double()
        out = torch.fft.rfft(x, dim=-1).abs().to(dtype)
        if not self.keep_nyquist:
            out = out[..., : x.shape[-1] // 2]
        if self.power != 1.0:
            out = out.pow(self.power)
        if self.log:
            out = to_db(out, self.config.eps)
        return out[0] if squeeze else out


@FRONTENDS.register("framestack", defaults={"context": 5},
                    description="frame-stacked log-mel vectors [B, frames-N+1, n_mels*N] (DCASE AE baseline)")
class FrameStack(nn.Module):
    """Frame-stacked log-mel vectors, time-major, as the DCASE autoencoder baseline feeds its AE.

    Vector ``j`` concatenates the log-mel frames ``j, j+1, ..., j+context-1`` (all ``n_mels``
    values of frame ``j`` first): ``[B, T] -> [B, frames - context + 1, n_mels * context]``.
    With 128 mels and ``context=5``: 640-d vectors, 309 per 10 s clip at 16 kHz / hop 512.
    """

    def __init__(self, config: FeatureConfig | None = None, context: int = 5):
        super().__init__()
        if not isinstance(context, int) or isinstance(context, bool) or context < 1:
            raise ConfigError(f"FrameStack context={context!r} must be a positive integer")
        self.config = config or FeatureConfig()
        self.context = context
        self.logmel = LogMel(self.config)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features (no batch axis)."""
        frames = self.config.frames(n_samples)
        return (frames - self.context + 1, self.config.n_mels * self.context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        logmel = self.logmel(x)  # [B, M, F]
        frames = logmel.shape[-1]
        if frames < self.context:
            raise FeatureInputError(
                f"a clip of {x.shape[-1]} samples gives {frames} frames, fewer than the context "
                f"of {self.context}; use longer clips or a smaller context"
            )
        windows = logmel.transpose(1, 2).unfold(1, self.context, 1)  # [B, V, M, N]
        out = windows.transpose(2, 3).reshape(x.shape[0], frames - self.context + 1, -1)
        return out[0] if squeeze else out


def build_frontend(name: str, config: FeatureConfig | dict | None = None, **kwargs) -> nn.Module:
    """Build a front-end by registry name (``logmel``, ``inverted_logmel``, ``linear``,
    ``spectrum``, ``framestack``); ``config`` may be a :class:`FeatureConfig` or a dict."""
    if isinstance(config, dict):
        config = FeatureConfig.from_dict(config)
    elif config is not None and not isinstance(config, FeatureConfig):
        raise ConfigError(f"config must be a FeatureConfig or a dict, got {type(config).__name__}")
    return FRONTENDS.build(name, config=config, **kwargs)


def output_shape(config: FeatureConfig, n_samples: int, frontend: str = "logmel", **kwargs) -> tuple[int, ...]:
    """Per-clip output shape (no batch axis) of ``frontend`` for clips of ``n_samples`` samples,
    computed from the config alone (no audio is processed)."""
    return build_frontend(frontend, config, **kwargs).output_shape(n_samples)
