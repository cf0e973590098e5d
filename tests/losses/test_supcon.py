"""Supervised contrastive loss against a loop implementation of its definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from auscult.errors import ConfigError
from auscult.losses import SupConLoss


def supcon_reference(z: torch.Tensor, weights: torch.Tensor, tau: float, base: float) -> float:
    """Loop over anchors; ``z`` [N, D] (all views), ``weights`` [N, N] positive weights."""
    z = F.normalize(z.double(), dim=1)
    n = len(z)
    losses = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in others)
        wsum = sum(float(weights[i, p]) for p in others)
        if wsum == 0:
            continue
        li = sum(float(weights[i, p]) * (float(z[i] @ z[p]) / tau - math.log(denom)) for p in others) / wsum
        losses.append(-(tau / base) * li)
    return sum(losses) / len(losses)


def test_hard_labels_match_definition():
    torch.manual_seed(0)
    z, y = torch.randn(10, 6), torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 3, 1])
    loss = SupConLoss(temperature=0.2, base_temperature=0.07)
    w = (y[:, None] == y[None, :]).double()
    assert float(loss(z, y)) == pytest.approx(supcon_reference(z, w, 0.2, 0.07), rel=1e-5)


def test_two_views_match_definition():
    torch.manual_seed(1)
    z, y = torch.randn(5, 2, 6), torch.tensor([0, 1, 0, 2, 1])
    loss = SupConLoss(temperature=0.1, base_temperature=0.1)
    flat = z.transpose(0, 1).reshape(10, 6)
    yy = y.repeat(2)
    w = (yy[:, None] == yy[None, :]).double()
    assert float(loss(z, y)) == pytest.approx(supcon_reference(flat, w, 0.1, 0.1), rel=1e-5)


def test_soft_mixed_labels_use_label_overlap():
    torch.manual_seed(2)
    z = torch.randn(6, 4)
    ya, yb = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 1, 0, 2, 0, 2])
    lam = 0.7
    soft = lam * F.one_hot(ya, 3).float() + (1 - lam) * F.one_hot(yb, 3).float()
    loss = SupConLoss(temperature=0.5, base_temperature=0.5)
    w = (soft @ soft.T).double()
    assert float(loss(z, soft)) == pytest.approx(supcon_reference(z, w, 0.5, 0.5), rel=1e-5)
    # one-hot soft labels equal hard labels
    assert torch.allclose(loss(z, F.one_hot(ya, 3).float()), loss(z, ya))


def test_no_positive_pairs_gives_zero_and_one_class_is_finite():
    z = torch.randn(4, 5, requires_grad=True)
    assert float(SupConLoss()(z, torch.arange(4)).detach()) == 0.0
    value = SupConLoss()(z, torch.zeros(4, dtype=torch.long))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(z.grad).all()


def test_shape_errors():
    with pytest.raises(ConfigError):
        SupConLoss()(torch.randn(4, 5), torch.arange(3))
    with pytest.raises(ConfigError):
        SupConLoss(temperature=0)
