"""The DCASE autoencoder baseline: 640 -> [128, BN, ReLU] x4 -> 8 -> [128, BN, ReLU] x4 -> 640.

Input vectors are ``context`` consecutive log-mel frames stacked (5 x 128 = 640 by default,
``auscult.features.FrameStack``). The bottleneck layer also has BN + ReLU, the output layer is
linear. Anomaly score: mean squared reconstruction error.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import NetBase, check_positive
from .registry import register_net


def _dense(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


@register_net(
    "autoencoder",
    inputs=lambda g: {"input_dim": g.n_mels * g.context},
    defaults={"hidden": 128, "bottleneck": 8, "n_layers": 4},
    description="DCASE baseline dense autoencoder on stacked log-mel frames",
)
class DenseAutoencoder(NetBase):
    """Dense autoencoder ``[B, input_dim] -> [B, input_dim]`` (reconstruction).

    ``encode(x) -> [B, bottleneck]``; ``reconstruction_error(x) -> [B]`` (mean squared error).
    """

    def __init__(self, input_dim: int, hidden: int = 128, bottleneck: int = 8, n_layers: int = 4):
        super().__init__()
        check_positive([input_dim, hidden, bottleneck, n_layers], "DenseAutoencoder", "pass positive sizes")
        self.input_shapes = ((input_dim,),)
        self.output_shape = (input_dim,)
        enc, d = [], input_dim
        for _ in range(n_layers):
            enc.append(_dense(d, hidden))
            d = hidden
        enc.append(_dense(d, bottleneck))
        dec, d = [], bottleneck
        for _ in range(n_layers):
            dec.append(_dense(d, hidden))
            d = hidden
        dec.append(nn.Linear(d, input_dim))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.forward(x) - x) ** 2).mean(-1)
