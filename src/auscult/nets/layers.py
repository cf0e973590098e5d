"""Small building blocks shared by the network families.

Everything here is shape-static: sizes are computed when a module is built, from the input
shape it is built for, so that the nets export to ONNX with only the batch axis dynamic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = ("prelu", "relu", "leakyrelu", "relu6")


def make_activation(name: str, channels: int, negative_slope: float = 0.1) -> nn.Module:
    """Build an activation by name.

    ``"prelu"`` has one learnable slope per channel (as in the published MobileFaceNet);
    ``"relu"`` is markedly faster on CPU (PReLU's backward is slow there); ``"leakyrelu"``
    uses ``negative_slope``; ``"relu6"`` is MobileNetV2's.
    """
    key = name.lower()
    if key == "prelu":
        return nn.PReLU(channels)
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


class _AnyDimBatchNorm(nn.modules.batchnorm._BatchNorm):
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
