"""Heads that sit between a network's embedding and a loss.

* :class:`ProjectionMLP` — the usual contrastive projection head (Linear/BN/act layers).
* :class:`FeaturePerturbationHead` — E -> R -> E bottleneck with BN and an activation, output
  L2-normalised; used by noise-supervised contrastive learning to perturb embeddings.

Heads are found by name in ``HEADS``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

HEADS = Registry("head")

_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU, "silu": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    """Build an activation module by name (relu, gelu, leaky_relu, prelu, silu)."""
    try:
        return _ACTS[name.lower()]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(_ACTS)}") from None


@HEADS.register("projection", description="Projection MLP (Linear-BN-act)*(n-1) + Linear, optional L2 norm")
class ProjectionMLP(nn.Module):
    """Projection MLP: ``n_layers`` linear layers with BN + activation between them.

    Args:
        in_dim: input embedding size.
        hidden_dim: width of the hidden layers.
        out_dim: output size.
        n_layers: number of linear layers (>= 1).
        activation: activation name.
        normalize: L2-normalise the output.
    """

    def __init__(self, in_dim: int = 128, hidden_dim: int = 512, out_dim: int = 128, n_layers: int = 2,
                 activation: str = "relu", normalize: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"ProjectionMLP needs n_layers >= 1, got {n_layers}")
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), make_activation(activation)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return F.normalize(y, dim=-1) if self.normalize else y


#: layouts of :class:`FeaturePerturbationHead`
FPH_LAYOUTS = ("bn_act", "act_bn")


@HEADS.register("feature_perturbation", description="E -> R -> E bottleneck with BN + activation, L2-normalised")
class FeaturePerturbationHead(nn.Module):
    """Feature perturbation head: ``E -> R -> E`` with BN and an activation, output L2-normalised.

    Layouts (``layout``):

    * ``"bn_act"``: Linear(E, R) -> BN(R) -> act -> Linear(R, E) -> BN(E) (no linear biases:
      each linear layer is followed by BN); one reading of the OS-SCL paper's text.
    * ``"act_bn"``: Linear(E, R) -> act -> BN(R) -> Linear(R, E) -> act -> BN(E), linear layers
      with biases: what the OS-SCL authors' code runs (``model/net.py: BasicHead`` with ReLU,
      ``LeakyReLUHead`` with LeakyReLU(0.01)). Children ``net.0`` ... ``net.5`` are, in order,
      the code's ``head.0`` ... ``head.5``.

    Args:
        emb_dim: embedding size E.
        bottleneck: bottleneck size R (default 64).
        activation: activation name.
        layout: ``"bn_act"`` (default) or ``"act_bn"``.

    ``project(x)`` is the head's output before the L2 normalisation; ``forward`` normalises it.
    """

    def __init__(self, emb_dim: int = 128, bottleneck: int = 64, activation: str = "relu",
                 layout: str = "bn_act"):
        super().__init__()
        if layout not in FPH_LAYOUTS:
            raise ConfigError(f"feature perturbation head: layout must be one of {FPH_LAYOUTS}, got {layout!r}")
        self.layout = layout
        if layout == "bn_act":
            self.net = nn.Sequential(
                nn.Linear(emb_dim, bottleneck, bias=False),
                nn.BatchNorm1d(bottleneck),
                make_activation(activation),
                nn.Linear(bottleneck, emb_dim, bias=False),
                nn.BatchNorm1d(emb_dim),
            )
        else:
            self.net = nn.Sequential(
                nn.Linear(emb_dim, bottleneck),
                make_activation(activation),
                nn.BatchNorm1d(bottleneck),
                nn.Linear(bottleneck, emb_dim),
                make_activation(activation),
                nn.BatchNorm1d(emb_dim),
            )

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before L2 normalisation, ``[B, E]``."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(x), dim=-1)
