"""Prototypical loss and its multiple- and negative-prototype expansions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from auscult.errors import ConfigError
from auscult.losses import LOSSES, PrototypicalLoss


def test_plain_loss_matches_definition():
    torch.manual_seed(0)
    z, y = torch.randn(9, 5), torch.tensor([2, 2, 5, 5, 5, 7, 7, 2, 7])
    zn = F.normalize(z, dim=1)
    classes = [2, 5, 7]
    protos = torch.stack([F.normalize(zn[y == c].mean(0), dim=0) for c in classes])
    target = torch.tensor([classes.index(int(c)) for c in y])
    ref = F.cross_entropy(zn @ protos.T / 0.07, target)
    assert torch.allclose(PrototypicalLoss()(z, y), ref, atol=1e-5)
    got, owner, cls = PrototypicalLoss().prototypes(z, y)
    assert torch.allclose(got, protos, atol=1e-6) and cls.tolist() == classes


def test_one_class_gives_zero_loss():
    z = torch.randn(5, 4, requires_grad=True)
    for name in ("prototypical", "prototypical_negative"):
        value = LOSSES.build(name)(z, torch.zeros(5, dtype=torch.long))
        assert float(value.detach()) == pytest.approx(0.0, abs=1e-6)


def test_multiple_prototypes_with_full_subsets_reduce_to_plain_plus_log():
    """With subset_ratio = 1 every sub-prototype equals its class prototype, so the supervised
    contrastive form equals the plain loss plus log(1 + M)."""
    torch.manual_seed(0)
    z, y = torch.randn(12, 6), torch.arange(12) % 3
    m = 3
    multi = PrototypicalLoss(n_sub_prototypes=m, subset_ratio=1.0)(z, y)
    plain = PrototypicalLoss()(z, y)
    assert float(multi) == pytest.approx(float(plain) + math.log(1 + m), rel=1e-5)
    protos, owner, _ = PrototypicalLoss(n_sub_prototypes=m, subset_ratio=0.5).prototypes(z, y)
    assert protos.shape == (3 * (1 + m), 6) and torch.bincount(owner).tolist() == [1 + m] * 3
    assert torch.allclose(protos.norm(dim=1), torch.ones(len(protos)))


def test_negative_expansion_adds_denominator_terms_and_is_seeded():
    torch.manual_seed(0)
    z, y = torch.randn(12, 6), torch.arange(12) % 3
    plain = PrototypicalLoss()(z, y)
    neg = PrototypicalLoss(n_negatives=4)
    assert float(neg(z, y)) > float(plain)
    a = neg(z, y, generator=torch.Generator().manual_seed(3))
    b = neg(z, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_pseudo_negatives_lie_between_anchor_and_other_prototype():
    """With lam fixed at 0.5 the negative for an anchor equals normalise(0.5 z + 0.5 p_other): check
    against a brute-force recomputation of the loss over every possible 'other' class."""
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    y = torch.tensor([0, 1])
    loss = PrototypicalLoss(n_negatives=1, neg_lambda=(0.5, 0.5), temperature=1.0)
    got = loss(z, y)
    # anchor 0: prototypes e0, e1; negative = normalise(0.5 e0 + 0.5 e1)
    n = F.normalize(torch.tensor([1.0, 1.0]), dim=0)
    li = -(1.0 - torch.logsumexp(torch.stack([torch.tensor(1.0), torch.tensor(0.0), n[0]]), 0))
    assert float(got) == pytest.approx(float(li), rel=1e-5)


def test_rejects_soft_labels_and_bad_config():
    with pytest.raises(ConfigError):
        PrototypicalLoss()(torch.randn(3, 4), torch.rand(3, 2))
    with pytest.raises(ConfigError):
        PrototypicalLoss(subset_ratio=0)
