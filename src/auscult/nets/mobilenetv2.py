"""MobileNetV2 (width 0.5 and 1.0) on 1-channel spectrograms, producing an embedding.

Standard inverted-residual stages ``(t, c, n, s)``: (1,16,1,1), (6,24,2,2), (6,32,3,2),
(6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1); 3x3/2 stem to 32 channels; 1x1 conv to
1280 (x width when width > 1); global average pooling; linear layer to ``emb_dim``.
Channel counts are scaled by ``width`` and rounded to multiples of 8.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import BatchNorm2d, NetBase, as_chw, check_positive, conv_out_len
from .registry import register_net

MBV2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without dropping below 90% of it."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def _cba(cin, cout, k, s, groups=1, act=True):
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBV2Block(nn.Module):
    """Inverted residual: optional 1x1 expand, 3x3 depthwise, linear 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else [_cba(cin, hidden, 1, 1)]
        layers += [_cba(hidden, hidden, 3, stride, groups=hidden), _cba(hidden, cout, 1, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(NetBase):
    """MobileNetV2 for ``[B, 1, n_mels, frames]`` (or ``[B, n_mels, frames]``) -> ``[B, emb_dim]``.

    Args:
        input_shape: ``(channels, n_mels, frames)`` or ``(n_mels, frames)``.
        emb_dim: embedding size; the pooled features go through one linear layer.
        width: width multiplier (0.5 or 1.0 registered; any positive value works).
    ``forward_features`` returns the last ``[B, last_channels, h, w]`` map.
    """

    def __init__(self, input_shape: Sequence[int], emb_dim: int = 128, width: float = 1.0):
        super().__init__()
        c, n_mels, frames = as_chw(input_shape, "MobileNetV2")
        h, w = n_mels, frames
        for s in [2] + [st for _, _, _, st in MBV2_SETTING]:
            h, w = conv_out_len(h, 3, s, 1), conv_out_len(w, 3, s, 1)
        check_positive([h, w], "MobileNetV2", "use more mel bins or frames")
        self.map_size = (h, w)
        self.input_shapes = ((c, n_mels, frames),)
        self.output_shape = (emb_dim,)
        cin = make_divisible(32 * width)
        self.last_channels = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [_cba(c, cin, 3, 2)]
        for t, ch, n, s in MBV2_SETTING:
            cout = make_divisible(ch * width)
            for i in range(n):
                layers.append(MBV2Block(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_cba(cin, self.last_channels, 1, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(self.last_channels, emb_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean((2, 3)))


_logmel = lambda g: {"input_shape": (1, g.n_mels, g.frames)}  # noqa: E731
register_net("mobilenetv2", inputs=_logmel, defaults={"emb_dim": 128, "width": 1.0},
             description="MobileNetV2 (width 1.0) on a 1-channel log-mel")(MobileNetV2)
register_net("mobilenetv2_050", inputs=_logmel, defaults={"emb_dim": 128, "width": 0.5},
             description="MobileNetV2 (width 0.5) on a 1-channel log-mel")(MobileNetV2)
