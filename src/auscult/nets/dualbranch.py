"""Dual-branch spectrum / spectrogram network (Wilkinghoff-style, as used for SSL4ASD).

Two branches, each ending in a 128-d embedding; the net's output is their concatenation
(256-d). No layer has a bias term (convolutions, dense layers, squeeze-excitation, and the
batch norms, which keep a learnable scale but no shift): a bias would let a compactness-style
loss map every input to one constant point.

Inputs (for a clip of ``T`` samples, STFT ``n_fft``/``hop`` = 1024/512 by default):

* ``x_spec [B, T // 2]``: the whole-clip magnitude spectrum ``|rfft(wave)|`` with the Nyquist
  bin dropped (bins ``0 .. T//2 - 1``), as ``auscult.features.ClipSpectrum`` produces it;
* ``x_stft [B, n_fft // 2 + 1, frames]``: the linear STFT magnitude (centered STFT,
  ``frames = 1 + T // hop``). The net subtracts its temporal mean per frequency itself.

Branch (a), spectrum: Conv1d(k=256, s=64) -> Conv1d(k=64, s=32) -> Conv1d(k=16, s=4), each with
batch norm, ReLU and squeeze-excitation (128 channels), flatten, dense layers with batch norm
and ReLU, and a final dense layer to 128. Branch (b), spectrogram: temporal mean normalisation,
batch norm over frequency, a 7x7/2 conv + 3x3/2 max-pool, ResNet stages of 16/32/64/128 channels
(two residual blocks each, squeeze-excitation in each block, strides 1/2/2/2), max-pool over the
remaining time frames, batch norm, dense to 128.

The spectrogram branch has two layouts (``layout``):

* ``"auscult"`` (default): post-activation residual blocks (conv-BN-ReLU-conv-BN-SE + shortcut, then
  ReLU; a 1x1 conv + BN shortcut where the shape changes), stem conv padded by 3, stem max-pool
  padded by 1.
* ``"asdkit"``: the residual blocks of Wilkinghoff's published network as the DCASE ASD toolkit
  writes it in PyTorch (``asdkit/models/multiresnet/stft_encoder_networks.py``): BN on the block
  input, then ReLU-conv-BN-ReLU-conv-SE; the shortcut adds the *batch-normed* input (stride 1) or a
  3x3/2 max-pool + 1x1 conv of it (stride 2); no activation after the sum; an unpadded stem conv
  and stem max-pool. ``tests/reference`` checks it against numbers produced by that code.

Independent of the layout: ``norm`` (``"scale"``: BN with a learnable scale, no shift, the default;
``"none"``: no affine parameters, as the toolkit with ``use_bias=False``; ``"affine"``: scale and
shift, as Keras' default batch norm in the SSL4ASD code), ``se_reduction`` (4; 16 in both
published codes), ``temporal_norm`` (subtract each frequency's mean over time first; the toolkit's
config leaves it off) and ``freq_bins`` (keep STFT bins ``[lo, hi)`` only; the toolkit keeps
200-8000 Hz, bins 13..512 for a 1024-point STFT at 16 kHz).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .layers import BatchNorm2d, NetBase, ScaleBatchNorm, SqueezeExcite, check_positive, conv_out_len
from .registry import register_net

SPECTRUM_CONVS = ((256, 64), (64, 32), (16, 4))  # (kernel, stride)


class SpectrumBranch(nn.Module):
    """Whole-clip magnitude spectrum ``[B, L]`` -> ``[B, emb_dim]`` (no biases).

    ``n_dense`` hidden dense layers (3; the SSL4ASD code has 4), ``conv_norm`` (batch norm after each
    conv; the SSL4ASD code has none there), ``padding`` (``"valid"``, or ``"same"``: each strided conv
    zero-padded as TensorFlow's ``padding='same'``, output length ``ceil(L / stride)``) and ``norm`` of
    the batch norms (see :func:`make_norm`).
    """

    def __init__(self, length: int, channels: int = 128, emb_dim: int = 128, hidden: int = 128,
                 n_dense: int = 3, se_reduction: int = 4, conv_norm: bool = True, padding: str = "valid",
                 norm: str = "scale"):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ConfigError(f"DualBranchNet: spectrum_padding must be 'valid' or 'same', got {padding!r}")
        layers: list[nn.Module] = []
        cin, n = 1, length
        for k, s in SPECTRUM_CONVS:
            if padding == "same":
                out = -(-n // s)
                total = max((out - 1) * s + k - n, 0)
                layers.append(nn.ConstantPad1d((total // 2, total - total // 2), 0.0))
                n = out
            else:
                n = conv_out_len(n, k, s)
            layers.append(nn.Conv1d(cin, channels, k, s, bias=False))
            if conv_norm:
                layers.append(make_norm(norm, channels, 1))
            layers += [nn.ReLU(inplace=True), SqueezeExcite(channels, se_reduction, bias=False)]
            cin = channels
        if n < 1:
            raise ConfigError(
                f"DualBranchNet: a spectrum of {length} bins is too short for the strided convs "
                f"(kernels/strides {SPECTRUM_CONVS}); use a longer clip"
            )
        self.conv = nn.Sequential(*layers)
        self.out_len = n
        dense: list[nn.Module] = []
        width = channels * n
        for _ in range(n_dense):
            dense += [nn.Linear(width, hidden, bias=False), make_norm(norm, hidden, 1), nn.ReLU(inplace=True)]
            width = hidden
        dense.append(nn.Linear(width, emb_dim, bias=False))
        self.dense = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x.unsqueeze(1) if x.dim() == 2 else x).flatten(1))


NORMS = ("scale", "none", "affine")
LAYOUTS = ("auscult", "asdkit")


def make_norm(kind: str, channels: int, dims: int) -> nn.Module:
    """Batch norm over ``channels`` for ``[B, C]`` / ``[B, C, L]`` (``dims=1``) or ``[B, C, H, W]``
    (``dims=2``) inputs: ``"scale"`` (:class:`ScaleBatchNorm`), ``"none"`` (no affine parameters) or
    ``"affine"`` (scale and shift)."""
    if kind == "scale":
        return ScaleBatchNorm(channels)
    if kind in ("none", "affine"):
        cls = nn.BatchNorm1d if dims == 1 else BatchNorm2d
        return cls(channels, affine=kind == "affine")
    raise ConfigError(f"DualBranchNet: norm must be one of {NORMS}, got {kind!r}")


class SEResBlock(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN-SE plus (projected) shortcut, then ReLU. No biases."""

    def __init__(self, cin: int, cout: int, stride: int, se_reduction: int = 4, norm: str = "scale"):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), make_norm(norm, cout, 2), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), make_norm(norm, cout, 2),
            SqueezeExcite(cout, se_reduction, bias=False),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), make_norm(norm, cout, 2))
            if stride != 1 or cin != cout else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class PreActSEBlock(nn.Module):
    """Pre-activation residual block of the published SSL4ASD network (``layout="asdkit"``):
    ``x = BN(x)``; ``r = SE(conv3x3(ReLU(BN(conv3x3/stride(ReLU(x))))))``; output ``shortcut(x) + r``
    where the shortcut is ``x`` itself (stride 1, same width) or ``conv1x1(maxpool3x3/stride(x))``.
    No biases, no activation after the sum."""

    def __init__(self, cin: int, cout: int, stride: int, se_reduction: int = 16, norm: str = "none"):
        super().__init__()
        self.in_norm = make_norm(norm, cin, 2)
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), make_norm(norm, cout, 2), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        )
        self.se = SqueezeExcite(cout, se_reduction, bias=False)
        if stride != 1:
            self.shortcut: nn.Module = nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.Conv2d(cin, cout, 1, bias=False))
        elif cin != cout:
            self.shortcut = nn.Sequential(nn.Identity(), nn.Conv2d(cin, cout, 1, bias=False))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_norm(x)
        return self.shortcut(x) + self.se(self.body(x))


class SpectrogramBranch(nn.Module):
    """Linear STFT magnitude ``[B, F, T]`` -> ``[B, emb_dim]`` (no biases; see the module docstring
    for ``layout``, ``norm``, ``se_reduction``, ``temporal_norm`` and ``freq_bins``)."""

    def __init__(self, n_freq: int, frames: int, widths: Sequence[int] = (16, 32, 64, 128),
                 blocks: int = 2, emb_dim: int = 128, se_reduction: int = 4, layout: str = "auscult",
                 norm: str = "scale", temporal_norm: bool = True, freq_bins: Sequence[int] | None = None):
        super().__init__()
        if layout not in LAYOUTS:
            raise ConfigError(f"DualBranchNet: layout must be one of {LAYOUTS}, got {layout!r}")
        if freq_bins is not None:
            lo, hi = (int(b) for b in freq_bins)
            if not 0 <= lo < hi <= n_freq:
                raise ConfigError(f"DualBranchNet: freq_bins must satisfy 0 <= lo < hi <= {n_freq}, got {freq_bins!r}")
            self.freq_bins: tuple[int, int] | None = (lo, hi)
            n_freq = hi - lo
        else:
            self.freq_bins = None
        self.layout, self.temporal_norm = layout, bool(temporal_norm)
        self.freq_norm = make_norm(norm, n_freq, 1)
        pad, pool_pad = (3, 1) if layout == "auscult" else (0, 0)
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 7, 2, pad, bias=False), make_norm(norm, widths[0], 2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, pool_pad),
        )
        h, w = n_freq, frames
        h, w = conv_out_len(h, 7, 2, pad), conv_out_len(w, 7, 2, pad)
        h, w = conv_out_len(h, 3, 2, pool_pad), conv_out_len(w, 3, 2, pool_pad)
        check_positive([h, w], "DualBranchNet spectrogram branch", "use more frames or frequency bins")
        block_cls = SEResBlock if layout == "auscult" else PreActSEBlock
        stages, cin = [], widths[0]
        for i, cout in enumerate(widths):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(block_cls(cin, cout, stride, se_reduction, norm))
                if stride == 2:
                    h, w = conv_out_len(h, 3, 2, 1), conv_out_len(w, 3, 2, 1)
                cin = cout
        check_positive([h, w], "DualBranchNet spectrogram branch", "use more frames or frequency bins")
        self.stages = nn.Sequential(*stages)
        self.map_size = (h, w)
        flat = cin * h
        self.out_norm = make_norm(norm, flat, 1)
        self.fc = nn.Linear(flat, emb_dim, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last ``[B, C, F', T']`` map (after the bin selection, mean normalisation, stem and stages)."""
        if self.freq_bins is not None:
            x = x[:, self.freq_bins[0]:self.freq_bins[1]]
        if self.temporal_norm:
            x = x - x.mean(dim=-1, keepdim=True)
        x = self.freq_norm(x).unsqueeze(1)
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.forward_features(x).amax(dim=-1).flatten(1)  # max-pool over remaining time
        return self.fc(self.out_norm(h))


def _dual_inputs(g):
    return {"spectrum_len": g.n_samples // 2, "stft_shape": (g.n_freq, g.frames)}


@register_net(
    "dualbranch",
    inputs=_dual_inputs,
    defaults={"emb_dim": 128},
    description="bias-free dual-branch net: clip spectrum + STFT magnitude -> 2 x 128-d",
)
class DualBranchNet(NetBase):
    """Spectrum + spectrogram branches -> concatenated ``[B, 2 * emb_dim]`` embedding.

    Args:
        spectrum_len: length of the clip spectrum input, ``n_samples // 2``.
        stft_shape: ``(n_fft // 2 + 1, frames)`` of the STFT magnitude input.
        emb_dim: size of each branch's embedding (128).
        layout, norm, se_reduction, temporal_norm, freq_bins: of the spectrogram branch (module
            docstring); ``norm`` and ``se_reduction`` apply to both branches. The defaults are
            auscult's own layout.
        spectrum_dense, spectrum_conv_norm, spectrum_padding: ``n_dense``, ``conv_norm`` and
            ``padding`` of the spectrum branch (:class:`SpectrumBranch`).

    ``forward(x_spec, x_stft)`` returns ``cat(emb_spectrum, emb_spectrogram)``;
    ``forward_branches`` returns the two separately (feature exchange swaps one of them);
    ``combine(emb_a, emb_b)`` concatenates them the same way ``forward`` does.
    """

    def __init__(self, spectrum_len: int, stft_shape: Sequence[int], emb_dim: int = 128,
                 layout: str = "auscult", norm: str = "scale", se_reduction: int = 4, temporal_norm: bool = True,
                 freq_bins: Sequence[int] | None = None, spectrum_dense: int = 3, spectrum_conv_norm: bool = True,
                 spectrum_padding: str = "valid"):
        super().__init__()
        n_freq, frames = (int(s) for s in stft_shape)
        check_positive([spectrum_len, n_freq, frames], "DualBranchNet", "pass the clip's input sizes")
        self.input_shapes = ((int(spectrum_len),), (n_freq, frames))
        self.input_names = ("spectrum", "stft")
        self.output_shape = (2 * emb_dim,)
        self.branch_dim = emb_dim
        self.spectrum = SpectrumBranch(int(spectrum_len), emb_dim=emb_dim, n_dense=int(spectrum_dense),
                                       se_reduction=se_reduction, conv_norm=bool(spectrum_conv_norm),
                                       padding=spectrum_padding, norm=norm)
        self.spectrogram = SpectrogramBranch(n_freq, frames, emb_dim=emb_dim, se_reduction=se_reduction,
                                             layout=layout, norm=norm, temporal_norm=temporal_norm,
                                             freq_bins=freq_bins)

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random non-negative magnitudes of the right shapes."""
        return tuple(x.abs() for x in super().example_inputs(batch, seed))

    def forward_branches(self, x_spec: torch.Tensor, x_stft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(emb_spectrum [B, emb_dim], emb_spectrogram [B, emb_dim])``."""
        return self.spectrum(x_spec), self.spectrogram(x_stft)

    @staticmethod
    def combine(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
        """Concatenate branch embeddings as ``forward`` does."""
        return torch.cat([emb_a, emb_b], dim=1)

    def forward(self, x_spec: torch.Tensor, x_stft: torch.Tensor) -> torch.Tensor:
        return self.combine(*self.forward_branches(x_spec, x_stft))
