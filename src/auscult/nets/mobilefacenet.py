"""MobileFaceNet as used for anomalous sound detection (STgram-MFN, Noisy-ArcMix).

Stem 3x3/2 conv to 64 channels, 3x3 depthwise conv, inverted-residual bottleneck stages
``[expansion, channels, repeats, stride] = [2,128,2,2], [4,128,2,2], [4,128,2,2]``, 1x1 conv to
512, a linear global depthwise conv whose kernel equals the remaining feature-map size
(computed from the input shape here, not fixed), and a linear 1x1 conv to the embedding.

``readout`` chooses how the last feature map becomes one vector before that 1x1 conv: ``"gdc"`` is
the published global depthwise conv (one learnt weight per channel and map position); ``"mean"``
averages the map over frequency and time, ``"meanstd"`` appends the per-channel standard deviation
over the map. The pooled read-outs are auscult's option for small data (docs/methods/clsia.md,
"Where the information is lost"): they have no position-dependent weights to learn and work for any
input size. ``"gdc"`` builds exactly the published layers, in the same order (same parameter names,
same initialisation draws).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .layers import BatchNorm2d, NetBase, as_chw, check_positive, conv_out_len, make_activation
from .registry import register_net

#: how the last feature map is reduced to a vector (see the module docstring)
READOUTS: tuple[str, ...] = ("gdc", "mean", "meanstd")

#: (expansion, out channels, repeats, stride of the first repeat)
MFN_SETTING: tuple[tuple[int, int, int, int], ...] = ((2, 128, 2, 2), (4, 128, 2, 2), (4, 128, 2, 2))


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation (``act=None`` -> linear)."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, groups=1, act: str | None = "prelu"):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
            BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(make_activation(act, cout))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> linear 1x1 project; identity shortcut when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, act: str):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBNAct(cin, hidden, 1, act=act),
            ConvBNAct(hidden, hidden, 3, stride, 1, groups=hidden, act=act),
            ConvBNAct(hidden, cout, 1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def mobilefacenet_map_size(
    n_mels: int, frames: int, setting: Sequence[Sequence[int]] = MFN_SETTING
) -> tuple[int, int]:
    """Feature-map size (freq, time) entering the global depthwise conv (dry calculation)."""
    h, w = conv_out_len(n_mels, 3, 2, 1), conv_out_len(frames, 3, 2, 1)
    for _, _, repeats, stride in setting:
        for i in range(repeats):
            s = stride if i == 0 else 1
            h, w = conv_out_len(h, 3, s, 1), conv_out_len(w, 3, s, 1)
    return h, w


@register_net(
    "mobilefacenet",
    inputs=lambda g: {"input_shape": (1, g.n_mels, g.frames)},
    defaults={"emb_dim": 128, "activation": "prelu"},
    description="MobileFaceNet (ASD variant) on 1-3 stacked log-mel/Tgram/TFgram channels",
)
class MobileFaceNet(NetBase):
    """MobileFaceNet for ``[B, C, n_mels, frames]`` inputs -> ``[B, emb_dim]`` embeddings.

    Args:
        input_shape: ``(channels, n_mels, frames)`` (or ``(n_mels, frames)`` for 1 channel).
        emb_dim: embedding size (128 as published).
        activation: ``"prelu"`` (published), ``"relu"`` (faster on CPU) or ``"leakyrelu"``.
        setting: bottleneck stages ``(expansion, channels, repeats, stride)``.
        width: channels of the last 1x1 conv and of the global depthwise conv (512).
        readout: ``"gdc"`` (published), ``"mean"`` or ``"meanstd"`` (pooled over the map).

    A 3-D input ``[B, n_mels, frames]`` is accepted when the net has one channel.
    ``forward_features`` returns the ``[B, width, h, w]`` map before global pooling.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        emb_dim: int = 128,
        activation: str = "prelu",
        setting: Sequence[Sequence[int]] = MFN_SETTING,
        width: int = 512,
        readout: str = "gdc",
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"MobileFaceNet: net.readout must be one of {', '.join(READOUTS)}, got {readout!r} "
                              f"(gdc is the published global depthwise conv)")
        self.readout = readout
        c, n_mels, frames = as_chw(input_shape, "MobileFaceNet")
        self.input_shapes = ((c, n_mels, frames),)
        self.output_shape = (emb_dim,)
        self.map_size = mobilefacenet_map_size(n_mels, frames, setting)
        check_positive(self.map_size, "MobileFaceNet", "use more mel bins or frames")
        self.stem = ConvBNAct(c, 64, 3, 2, 1, act=activation)
        self.dw = ConvBNAct(64, 64, 3, 1, 1, groups=64, act=activation)
        blocks, cin = [], 64
        for expansion, cout, repeats, stride in setting:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion, activation))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.expand = ConvBNAct(cin, width, 1, act=activation)
        if readout == "gdc":
            self.gdconv = ConvBNAct(width, width, self.map_size, groups=width, act=None)
        self.project = ConvBNAct(width * (2 if readout == "meanstd" else 1), emb_dim, 1, act=None)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``[B, width, h, w]`` feature map before the global depthwise conv."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.expand(self.blocks(self.dw(self.stem(x))))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """The ``[B, width or 2 * width, 1, 1]`` read-out of a ``forward_features`` map."""
        if self.readout == "gdc":
            return self.gdconv(fmap)
        mean = fmap.mean((2, 3), keepdim=True)
        if self.readout == "mean":
            return mean
        # the small constant keeps the gradient finite where a channel is constant over the map
        std = (fmap.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
        return torch.cat([mean, std], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.pool(self.forward_features(x))).flatten(1)
