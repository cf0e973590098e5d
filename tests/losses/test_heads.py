"""Projection MLP and feature perturbation head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auscult.errors import ConfigError
from auscult.losses import HEADS, FeaturePerturbationHead, ProjectionMLP


@pytest.mark.parametrize("name", HEADS.names())
def test_every_head_maps_embeddings_and_backprops(name):
    head = HEADS.build(name)
    x = torch.randn(8, 128, requires_grad=True)
    out = head(x)
    assert out.shape[0] == 8 and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_feature_perturbation_layout_and_norm():
    head = FeaturePerturbationHead(emb_dim=32, bottleneck=8, activation="relu")
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [(l.in_features, l.out_features) for l in linears] == [(32, 8), (8, 32)]
    assert [b.num_features for b in bns] == [8, 32]
    out = head(torch.randn(6, 32))
    assert out.shape == (6, 32)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-5)


def test_projection_mlp_shapes_and_errors():
    head = ProjectionMLP(in_dim=16, hidden_dim=24, out_dim=10, n_layers=3, normalize=False)
    assert head(torch.randn(5, 16)).shape == (5, 10)
    with pytest.raises(ConfigError):
        ProjectionMLP(n_layers=0)
    with pytest.raises(ConfigError):
        FeaturePerturbationHead(activation="nope")
