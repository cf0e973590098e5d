"""Small building blocks shared by the network families.

Everything here is shape-static: sizes are computed when a module is built, from the input
shape it is built for, so that the nets export to ONNX with only the batch axis dynamic.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = ("prelu", "relu", "leakyrelu", "relu6")


def _prelu_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PReLU's gradients ``(d/dx, d/dweight)`` for a per-channel ``weight`` ``[C]`` on ``[B, C, ...]``:
    ``grad`` where ``x > 0`` else ``weight * grad``, and ``sum(grad * x)`` over ``x <= 0`` per channel
    (what ATen's ``_prelu_kernel_backward`` computes, written so that inductor fuses it)."""
    w = weight.view(1, -1, *([1] * (x.dim() - 2)))
    pos = x > 0
    gx = torch.where(pos, grad, grad * w)
    gw = torch.where(pos, 0.0, grad * x).sum([0, *range(2, x.dim())])
    return gx, gw


def _prelu_backward_aten(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = weight.view(1, -1, *([1] * (x.dim() - 2)))
    gx, gw = torch.ops.aten._prelu_kernel_backward(grad, x, w)
    return gx, gw.sum([0, *range(2, x.dim())])


@functools.cache
def _prelu_backward_kernel():
    from ..engine.fastpath import CompiledKernel

    return CompiledKernel(_prelu_backward, _prelu_backward_aten, "fused_prelu")


class _FusedPReLUFn(torch.autograd.Function):
    """ATen's PReLU forward; the backward as one fused kernel (see :class:`FastPReLU`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return torch._prelu_kernel(x, weight.view(1, -1, *([1] * (x.dim() - 2))))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        gx, gw = _prelu_backward_kernel()(x, grad.contiguous(memory_format=_format_of(x)), weight)
        return (gx if ctx.needs_input_grad[0] else None), (gw if ctx.needs_input_grad[1] else None)


def _format_of(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class FastPReLU(nn.PReLU):
    """``nn.PReLU`` with one slope per channel whose backward runs as one fused kernel on CPU.

    ATen computes PReLU's two gradients with a scalar (not vectorised) two-output loop; in a
    MobileFaceNet training step that loop took ~45 % of the time on CPU. Here the forward is ATen's
    and the backward is :func:`_prelu_backward` compiled once by ``torch.compile`` (4x faster,
    same values to float rounding of the slope's sum); where compiling is not possible it falls
    back to ATen's kernel. Used only on CPU, with gradients, when the ``fused_prelu`` fast path is
    on (:mod:`auscult.engine.fastpath`); otherwise this is ``nn.PReLU``. Same parameters and
    state-dict names as ``nn.PReLU``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.num_parameters > 1 and x.device.type == "cpu" and x.dim() >= 2
                and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
                and x.dtype in (torch.float32, torch.float64)):
            from ..engine.fastpath import compiling, settings

            if settings().fused_prelu and not compiling() and not torch.jit.is_tracing():
                return _FusedPReLUFn.apply(x, self.weight)
        return super().forward(x)


def make_activation(name: str, channels: int, negative_slope: float = 0.1) -> nn.Module:
    """Build an activation by name.

    ``"prelu"`` has one learnable slope per channel (as in the published MobileFaceNet;
    :class:`FastPReLU`, whose backward is fused on CPU); ``"relu"`` is still faster on CPU;
    ``"leakyrelu"`` uses ``negative_slope``; ``"relu6"`` is MobileNetV2's.
    """
    key = name.lower()
    if key == "prelu":
        return FastPReLU(channels)
    if key == "relu":
        return nn.ReLU(inplace=True)
    if key in ("leakyrelu", "leaky_relu"):
        return nn.LeakyReLU(negative_slope, inplace=True)
    if key == "relu6":
        return nn.ReLU6(inplace=True)
    raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def conv_out_len(length: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis (PyTorch's floor formula)."""
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_positive(sizes: Sequence[int], what: str, fix: str) -> None:
    """Raise :class:`ConfigError` when a computed size is not positive."""
    if any(int(s) < 1 for s in sizes):
        raise ConfigError(f"{what}: the input is too small (computed sizes {tuple(sizes)}); {fix}")


@dataclass(frozen=True)
class ClipGeometry:
    """The input a net is built for: clip length, sample rate and STFT/mel settings.

    ``frames`` is the frame count of the STFT (``1 + n_samples // hop_length`` when centered, the
    same as :meth:`auscult.features.FeatureConfig.frames`). ``context`` is the number of stacked
    log-mel frames of frame-stacking nets (the DCASE autoencoder: 5); ``crop_frames`` the length of
    the frame crops a crop-based net sees (ProtoASD: 64), ``None`` when it sees whole clips.

    Build it from a recipe's sections with :meth:`from_configs` -- methods never rely on these
    defaults (a 10 s, 16 kHz, 128-mel clip), which only make ``NETS.build(name)`` work on its own.
    """

    duration: float = 10.0
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    center: bool = True
    context: int = 5
    crop_frames: Optional[int] = None

    @classmethod
    def from_configs(cls, audio: Any = None, features: Any = None, *, n_samples: Optional[int] = None,
                     **fields: Any) -> "ClipGeometry":
        """The geometry of a recipe: ``audio`` (an :class:`~auscult.audio.AudioConfig` or its mapping:
        ``sample_rate``, ``duration``) and ``features`` (a :class:`~auscult.features.FeatureConfig` or
        its mapping: ``n_fft``, ``hop_length``, ``n_mels``, ``center``). ``n_samples`` gives the clip
        length when the audio section does not fix it (``length: keep``); other keyword arguments set
        ``context`` / ``crop_frames``.
        """
        def get(obj: Any, key: str, default: Any) -> Any:
            if obj is None:
                return default
            if isinstance(obj, Mapping):
                v = obj.get(key, default)
            else:
                v = getattr(obj, key, default)
            return default if v is None else v

        sr = int(get(audio, "sample_rate", get(features, "sample_rate", 16000)))
        if n_samples is None:
            duration = get(audio, "duration", None)
            if duration is None:
                raise ConfigError("the clip length is not fixed (audio.length: keep); give n_samples (the length "
                                  "the net is built for) or set audio.length: tile/crop with a duration")
            n_samples = int(round(float(duration) * sr))
        return cls(duration=int(n_samples) / sr, sample_rate=sr, n_fft=int(get(features, "n_fft", 1024)),
                   hop_length=int(get(features, "hop_length", 512)), n_mels=int(get(features, "n_mels", 128)),
                   center=bool(get(features, "center", True)), **fields)

    def replace(self, **changes: Any) -> "ClipGeometry":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames the net sees: ``crop_frames`` when set, else the whole clip's STFT frames."""
        if self.crop_frames is not None:
            return int(self.crop_frames)
        if self.center:
            return 1 + self.n_samples // self.hop_length
        return 1 + (self.n_samples - self.n_fft) // self.hop_length

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over channels for ``[B, C, ...]`` maps (mean over the rest)."""

    def __init__(self, channels: int, reduction: int = 4, bias: bool = True):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(2).mean(-1)
        w = torch.sigmoid(self.fc2(self.act(self.fc1(s))))
        return x * w.view(*w.shape, *([1] * (x.dim() - 2)))


def _channels_last_4d(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _var_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel biased variance and mean of ``[B, C, H, W]`` (Welford, one pass)."""
    return torch.var_mean(x, (0, 2, 3), correction=0)


@functools.cache
def _var_mean_kernel():
    from ..engine.fastpath import CompiledKernel

    # eager var_mean is as accurate but ~8x slower on channels-last input
    return CompiledKernel(_var_mean, _var_mean, "batchnorm_stats")


class _BatchNormCL(torch.autograd.Function):
    """Training-mode batch norm with the batch statistics from :func:`_var_mean` (compiled); the
    normalisation and the backward are ATen's (``native_batch_norm_backward`` with these statistics,
    the same function autograd calls for ``F.batch_norm``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # type: ignore[override]
        var, mean = _var_mean_kernel()(x)
        y = F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)
        invstd = (var + eps).rsqrt()
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad, _gmean, _gvar):  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                weight is not None and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(memory_format=torch.channels_last), x, weight, None, None, mean, invstd, True,
            ctx.eps, mask)
        return gx, gw, gb, None


class _AccurateStats:
    """Training-mode batch norm of channels-last CPU input with accurately accumulated statistics.

    ATen's channels-last CPU kernel sums the batch statistics naively in float32 and takes the
    variance as ``E[x^2] - E[x]^2``: its normalised output was 16-50x further from the float64
    result than the NCHW kernel's (1.1e-5 vs 6.9e-7 for conv outputs offset by 30; 1.7e-4 vs 3.3e-6
    for ``3 + 0.05 N(0, 1)``), enough to push the OS-SCL training step past the reference-parity
    bounds. Here the statistics come from a compiled one-pass Welford reduction (:func:`_var_mean`,
    as fast as the stock kernel's); ATen's kernels normalise and differentiate with them. The 2-D
    nets train channels-last on CPU (:mod:`auscult.engine.fastpath`); other inputs take the stock
    path. Running statistics are updated as ``nn.BatchNorm`` does (unbiased variance).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not (self.training and x.device.type == "cpu" and _channels_last_4d(x)
                and x.dtype in (torch.float32, torch.float64)):
            return super().forward(x)  # type: ignore[misc]
        from ..engine.fastpath import compiling

        if compiling():
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)  # type: ignore[attr-defined]
        momentum = 0.0 if self.momentum is None else self.momentum  # type: ignore[attr-defined]
        if self.track_running_stats and self.num_batches_tracked is not None:  # type: ignore[attr-defined]
            self.num_batches_tracked.add_(1)  # type: ignore[attr-defined]
            if self.momentum is None:  # type: ignore[attr-defined]
                momentum = 1.0 / float(self.num_batches_tracked)  # type: ignore[attr-defined]
        y, mean, var = _BatchNormCL.apply(x, self.weight, self.bias, self.eps)  # type: ignore[attr-defined]
        if self.running_mean is not None:  # type: ignore[attr-defined]
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(mean.to(x.dtype), alpha=momentum)  # type: ignore[attr-defined]
                unbiased = var * (n / max(n - 1, 1))
                self.running_var.mul_(1 - momentum).add_(unbiased.to(x.dtype), alpha=momentum)  # type: ignore[attr-defined]
        return y


class BatchNorm2d(_AccurateStats, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state-dict names) whose training-mode
    statistics of channels-last CPU input keep the NCHW kernel's accuracy (see
    :class:`_AccurateStats`); the 2-D nets train channels-last on CPU (:mod:`auscult.engine.fastpath`)."""


class _AnyDimBatchNorm(_AccurateStats, nn.modules.batchnorm._BatchNorm):
    """Batch norm over axis 1 of a ``[B, C, *]`` input of any rank."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ConfigError(f"batch norm needs a [B, C, ...] input, got shape {tuple(input.shape)}")


class ScaleBatchNorm(nn.Module):
    """Batch normalisation with a learnable scale but no shift (no bias term).

    Used where a bias would let a network map everything to one constant point (compactness
    losses); works on ``[B, C]``, ``[B, C, L]`` and ``[B, C, H, W]`` inputs.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.channels = channels
        self.norm = _AnyDimBatchNorm(channels, eps=eps, momentum=momentum, affine=False)
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.weight.view(1, -1, *([1] * (x.dim() - 2)))


class StaticAdaptiveMaxPool1d(nn.Module):
    """``nn.AdaptiveMaxPool1d`` for a length known at build time, written as gather + max.

    Produces exactly the same windows as PyTorch's adaptive pooling (``[floor(i*L/O),
    ceil((i+1)*L/O))``) but exports to ONNX for any ``L``/``O`` ratio (the legacy exporter
    refuses adaptive pooling when ``O`` does not divide ``L``).
    """

    def __init__(self, in_len: int, out_len: int):
        super().__init__()
        check_positive([in_len, out_len], "StaticAdaptiveMaxPool1d", "use a longer input")
        starts = [(i * in_len) // out_len for i in range(out_len)]
        ends = [-((-(i + 1) * in_len) // out_len) for i in range(out_len)]
        width = max(e - s for s, e in zip(starts, ends))
        idx = torch.empty(out_len, width, dtype=torch.long)
        for i, (s, e) in enumerate(zip(starts, ends)):
            span = list(range(s, e))
            idx[i] = torch.tensor(span + [span[-1]] * (width - len(span)))
        self.in_len, self.out_len = in_len, out_len
        self.register_buffer("index", idx.flatten(), persistent=False)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_len:
            raise ConfigError(
                f"StaticAdaptiveMaxPool1d was built for length {self.in_len}, got {x.shape[-1]}; "
                "build the net for the input length you feed it"
            )
        g = x.index_select(-1, self.index)
        return g.reshape(*x.shape[:-1], self.out_len, self.width).amax(-1)


class NetBase(nn.Module):
    """Common interface of auscult nets.

    ``input_shapes`` lists the per-sample shape of every positional input of ``forward``
    (batch axis excluded); ``example_inputs`` builds random tensors of those shapes.
    ``output_shape`` is the per-sample shape of the output (``(emb_dim,)`` for embedding nets,
    ``(n_mels, frames)`` for the waveform branches that produce maps).
    """

    input_shapes: tuple[tuple[int, ...], ...] = ()
    input_names: tuple[str, ...] = ("x",)
    output_shape: tuple[int, ...] = ()

    @property
    def output_dim(self) -> int:
        """Size of the last output axis (the embedding size for embedding nets)."""
        return self.output_shape[-1]

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs of the shapes this net was built for (deterministic given ``seed``)."""
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(batch, *s, generator=g) for s in self.input_shapes)


def as_chw(input_shape: Sequence[int], what: str) -> tuple[int, int, int]:
    """Normalise ``(n_mels, frames)`` or ``(channels, n_mels, frames)`` to a 3-tuple."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ConfigError(
            f"{what}: input_shape must be (n_mels, frames) or (channels, n_mels, frames), got {input_shape!r}"
        )
    check_positive(shape, what, "pass the shape of the spectrogram the net will see")
    return shape  # type: ignore[return-value]
