"""ResNets on spectrograms: ResNet18 with time-frequency attention pooling, ResNet50 encoder.

Both use the ImageNet layout (7x7/2 stem to 64 channels, 3x3/2 max-pool, four stages with
strides 1/2/2/2) on a ``[B, C, n_mels, frames]`` input.

* :class:`ResNet18TFAP`: basic blocks ``[2, 2, 2, 2]``; instead of average pooling the last map
  ``h [B, 512, F, T]`` is pooled by attention twice: over time on ``mean_F(h)`` and over
  frequency on ``mean_T(h)``, each with softmax weights from a 1x1 conv; the two 512-d vectors
  are concatenated and projected to ``emb_dim``. Registered for 64-frame crops.
* :class:`ResNet50Encoder`: bottleneck blocks ``[3, 4, 6, 3]``, global average pooling
  (2048-d), optional linear projection to ``emb_dim`` (``emb_dim=None`` keeps 2048).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import BatchNorm2d, NetBase, as_chw, check_positive, conv_out_len
from .registry import register_net


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), BatchNorm2d(planes))
            if stride != 1 or cin != planes else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False), BatchNorm2d(out),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), BatchNorm2d(out))
            if stride != 1 or cin != out else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def resnet_map_size(h: int, w: int) -> tuple[int, int]:
    """Size of the last ResNet map for an ``h x w`` input (stem /2, pool /2, stages 1/2/2/2)."""
    h, w = conv_out_len(h, 7, 2, 3), conv_out_len(w, 7, 2, 3)
    h, w = conv_out_len(h, 3, 2, 1), conv_out_len(w, 3, 2, 1)
    for _ in range(3):
        h, w = conv_out_len(h, 3, 2, 1), conv_out_len(w, 3, 2, 1)
    return h, w


class _ResNetTrunk(nn.Module):
    def __init__(self, in_channels: int, block, layers: Sequence[int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class TFAttentionPool(nn.Module):
    """Attention pooling over time and over frequency of a ``[B, C, F, T]`` map -> ``[B, 2C]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.time_score = nn.Conv1d(channels, 1, 1)
        self.freq_score = nn.Conv1d(channels, 1, 1)

    @staticmethod
    def _pool(seq: torch.Tensor, score: nn.Module) -> torch.Tensor:
        a = torch.softmax(score(seq), dim=-1)  # [B, 1, L]
        return (seq * a).sum(-1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._pool(h.mean(2), self.time_score), self._pool(h.mean(3), self.freq_score)], dim=1)

    def weights(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The time ``[B, T]`` and frequency ``[B, F]`` attention weights."""
        return (torch.softmax(self.time_score(h.mean(2)), -1)[:, 0], torch.softmax(self.freq_score(h.mean(3)), -1)[:, 0])


@register_net(
    "resnet18_tfap",
    inputs=lambda g: {"input_shape": (1, g.n_mels, g.crop_frames or 64)},
    defaults={"emb_dim": 128},
    description="ResNet18 with time-frequency attention pooling, for 64-frame log-mel crops",
)
class ResNet18TFAP(NetBase):
    """ResNet18 + time-frequency attention pooling -> ``[B, emb_dim]``.

    ``forward_features`` returns the last ``[B, 512, F, T]`` map; ``self.pool.weights(map)``
    the attention weights.
    """

    def __init__(self, input_shape: Sequence[int], emb_dim: int = 128):
        super().__init__()
        c, h, w = as_chw(input_shape, "ResNet18TFAP")
        self.map_size = resnet_map_size(h, w)
        check_positive(self.map_size, "ResNet18TFAP", "use more mel bins or frames")
        self.input_shapes = ((c, h, w),)
        self.output_shape = (emb_dim,)
        self.trunk = _ResNetTrunk(c, BasicBlock, (2, 2, 2, 2))
        self.pool = TFAttentionPool(self.trunk.out_channels)
        self.fc = nn.Linear(2 * self.trunk.out_channels, emb_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.unsqueeze(1) if x.dim() == 3 else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.forward_features(x)))


@register_net(
    "resnet50",
    inputs=lambda g: {"input_shape": (1, g.n_mels, g.frames)},
    defaults={"emb_dim": None},
    description="ResNet50 encoder (2048-d pooled features) for contrastive pre-training",
)
class ResNet50Encoder(NetBase):
    """ResNet50 encoder -> ``[B, 2048]`` pooled features (or ``[B, emb_dim]`` via a linear layer)."""

    def __init__(self, input_shape: Sequence[int], emb_dim: int | None = None):
        super().__init__()
        c, h, w = as_chw(input_shape, "ResNet50Encoder")
        self.map_size = resnet_map_size(h, w)
        check_positive(self.map_size, "ResNet50Encoder", "use more mel bins or frames")
        self.input_shapes = ((c, h, w),)
        self.trunk = _ResNetTrunk(c, Bottleneck, (3, 4, 6, 3))
        feat = self.trunk.out_channels
        self.fc = nn.Identity() if emb_dim is None or emb_dim == feat else nn.Linear(feat, emb_dim)
        self.output_shape = (feat if emb_dim is None else emb_dim,)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.unsqueeze(1) if x.dim() == 3 else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean((2, 3)))
