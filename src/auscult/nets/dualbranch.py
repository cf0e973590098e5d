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
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .layers import NetBase, ScaleBatchNorm, SqueezeExcite, check_positive, conv_out_len
from .registry import register_net

SPECTRUM_CONVS = ((256, 64), (64, 32), (16, 4))  # (kernel, stride)


class SpectrumBranch(nn.Module):
    """Whole-clip magnitude spectrum ``[B, L]`` -> ``[B, emb_dim]`` (no biases)."""

    def __init__(self, length: int, channels: int = 128, emb_dim: int = 128, hidden: int = 128,
                 n_dense: int = 3, se_reduction: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        cin, n = 1, length
        for k, s in SPECTRUM_CONVS:
            n = conv_out_len(n, k, s)
            layers += [nn.Conv1d(cin, channels, k, s, bias=False), ScaleBatchNorm(channels),
                       nn.ReLU(inplace=True), SqueezeExcite(channels, se_reduction, bias=False)]
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
            dense += [nn.Linear(width, hidden, bias=False), ScaleBatchNorm(hidden), nn.ReLU(inplace=True)]
            width = hidden
        dense.append(nn.Linear(width, emb_dim, bias=False))
        self.dense = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x.unsqueeze(1) if x.dim() == 2 else x).flatten(1))


class SEResBlock(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN-SE plus (projected) shortcut, then ReLU. No biases."""

    def __init__(self, cin: int, cout: int, stride: int, se_reduction: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), ScaleBatchNorm(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), ScaleBatchNorm(cout),
            SqueezeExcite(cout, se_reduction, bias=False),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), ScaleBatchNorm(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class SpectrogramBranch(nn.Module):
    """Linear STFT magnitude ``[B, F, T]`` -> ``[B, emb_dim]`` (no biases)."""

    def __init__(self, n_freq: int, frames: int, widths: Sequence[int] = (16, 32, 64, 128),
                 blocks: int = 2, emb_dim: int = 128, se_reduction: int = 4):
        super().__init__()
        self.freq_norm = ScaleBatchNorm(n_freq)
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 7, 2, 3, bias=False), ScaleBatchNorm(widths[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        h, w = n_freq, frames
        h, w = conv_out_len(h, 7, 2, 3), conv_out_len(w, 7, 2, 3)
        h, w = conv_out_len(h, 3, 2, 1), conv_out_len(w, 3, 2, 1)
        stages, cin = [], widths[0]
        for i, cout in enumerate(widths):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(SEResBlock(cin, cout, stride, se_reduction))
                if stride == 2:
                    h, w = conv_out_len(h, 3, 2, 1), conv_out_len(w, 3, 2, 1)
                cin = cout
        check_positive([h, w], "DualBranchNet spectrogram branch", "use more frames or frequency bins")
        self.stages = nn.Sequential(*stages)
        self.map_size = (h, w)
        flat = cin * h
        self.out_norm = ScaleBatchNorm(flat)
        self.fc = nn.Linear(flat, emb_dim, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last ``[B, C, F', T']`` map (after mean normalisation, stem and stages)."""
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

    ``forward(x_spec, x_stft)`` returns ``cat(emb_spectrum, emb_spectrogram)``;
    ``forward_branches`` returns the two separately (feature exchange swaps one of them);
    ``combine(emb_a, emb_b)`` concatenates them the same way ``forward`` does.
    """

    def __init__(self, spectrum_len: int, stft_shape: Sequence[int], emb_dim: int = 128):
        super().__init__()
        n_freq, frames = (int(s) for s in stft_shape)
        check_positive([spectrum_len, n_freq, frames], "DualBranchNet", "pass the clip's input sizes")
        self.input_shapes = ((int(spectrum_len),), (n_freq, frames))
        self.input_names = ("spectrum", "stft")
        self.output_shape = (2 * emb_dim,)
        self.branch_dim = emb_dim
        self.spectrum = SpectrumBranch(int(spectrum_len), emb_dim=emb_dim)
        self.spectrogram = SpectrogramBranch(n_freq, frames, emb_dim=emb_dim)

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
