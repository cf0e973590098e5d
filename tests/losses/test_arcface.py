"""ArcFace margin arithmetic and the Noisy-ArcMix combination, checked against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from auscult.augment import mixup
from auscult.errors import ConfigError
from auscult.losses import ArcFace, NoisyArcMix


def test_margin_logit_is_cos_theta_plus_m_where_defined():
    arc = ArcFace(emb_dim=4, n_classes=2, scale=1.0, margin=0.5)
    theta = torch.linspace(0.0, math.pi - 0.5 - 1e-3, 200, dtype=torch.float64)
    ref = torch.cos(theta + 0.5)
    got = arc.margin_cosine(torch.cos(theta))
    assert torch.allclose(got, ref, atol=1e-6)


def test_margin_logit_monotonic_and_below_plain_cosine_up_to_pi():
    arc = ArcFace(emb_dim=4, n_classes=2, margin=0.7)
    cos = torch.cos(torch.linspace(0.0, math.pi, 2001, dtype=torch.float64))
    phi = arc.margin_cosine(cos)
    assert (phi[1:] <= phi[:-1] + 1e-12).all(), "target logit must decrease with theta over [0, pi]"
    assert (phi < cos).all()


def test_easy_margin_leaves_obtuse_angles_alone():
    arc = ArcFace(emb_dim=4, n_classes=2, margin=0.3, easy_margin=True)
    cos = torch.tensor([-0.9, -0.1, 0.5])
    phi = arc.margin_cosine(cos)
    assert torch.equal(phi[:2], cos[:2])
    assert phi[2] == pytest.approx(math.cos(math.acos(0.5) + 0.3), abs=1e-6)


def test_logits_margin_only_on_labelled_class_and_scaled():
    torch.manual_seed(0)
    arc = ArcFace(emb_dim=8, n_classes=4, scale=10.0, margin=0.2)
    emb, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 1])
    z = arc.logits(emb, y)
    cos = arc.cosine(emb)
    onehot = F.one_hot(y, 4).bool()
    assert torch.allclose(z[~onehot], 10 * cos[~onehot])
    assert torch.allclose(z[onehot], 10 * arc.margin_cosine(cos[onehot]))
    assert torch.allclose(arc(emb, y), F.cross_entropy(z, y))


def test_gradient_finite_exactly_on_and_opposite_a_centre():
    arc = ArcFace(emb_dim=8, n_classes=3)
    emb = torch.stack([arc.weight[0].detach(), -arc.weight[0].detach()]).requires_grad_(True)
    arc(emb, torch.tensor([0, 0])).backward()
    assert torch.isfinite(emb.grad).all()


def test_sub_centres_take_the_max():
    torch.manual_seed(0)
    arc = ArcFace(emb_dim=8, n_classes=2, sub_centers=3)
    emb = torch.randn(4, 8)
    full = F.normalize(emb, dim=1) @ F.normalize(arc.weight, dim=1).T
    assert torch.allclose(arc.cosine(emb), full.view(4, 2, 3).amax(2), atol=1e-6)


def test_bad_labels_and_margin_raise():
    arc = ArcFace(emb_dim=4, n_classes=2)
    with pytest.raises(ConfigError):
        arc(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ConfigError):
        ArcFace(emb_dim=4, n_classes=2, margin=2.0)


def test_noisy_arcmix_is_the_lambda_weighted_ce_on_y_a_margin_logits():
    torch.manual_seed(0)
    loss = NoisyArcMix(emb_dim=8, n_classes=3, scale=16.0, margin=0.5)
    emb, ya, yb = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 2, 0, 0, 2, 1])
    z = loss.logits(emb, ya)  # margin on y_a for both terms
    for lam in (0.0, 0.3, 1.0):
        ref = lam * F.cross_entropy(z, ya) + (1 - lam) * F.cross_entropy(z, yb)
        assert torch.allclose(loss(emb, ya, yb, lam), ref, atol=1e-6)
    # lam = 1 and y_b = None are plain ArcFace
    arc = ArcFace(emb_dim=8, n_classes=3, scale=16.0, margin=0.5)
    arc.load_state_dict(loss.state_dict())
    assert torch.allclose(loss(emb, ya, yb, 1.0), arc(emb, ya))
    assert torch.allclose(loss(emb, ya), arc(emb, ya))
    # per-sample lambdas
    lam = torch.rand(6)
    per = lam * F.cross_entropy(z, ya, reduction="none") + (1 - lam) * F.cross_entropy(z, yb, reduction="none")
    assert torch.allclose(loss(emb, ya, yb, lam), per.mean(), atol=1e-6)


def test_noisy_arcmix_trains_with_mixup():
    """Mixed inputs with y_a/y_b from mixup: the classifier still separates three classes."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    means = torch.eye(3, 6) * 3
    y = torch.arange(3).repeat_interleave(40)
    x = means[y] + torch.randn(len(y), 6, generator=g)
    enc = torch.nn.Linear(6, 8)
    loss = NoisyArcMix(emb_dim=8, n_classes=3, scale=16.0, margin=0.3)
    opt = torch.optim.Adam(list(enc.parameters()) + list(loss.parameters()), lr=1e-2)
    for _ in range(100):
        m = mixup(x, alpha=1.0, generator=g)
        opt.zero_grad()
        loss(enc(m.x), y, y[m.perm], m.lam).backward()
        opt.step()
    with torch.no_grad():
        acc = (loss.cosine(enc(x)).argmax(1) == y).float().mean()
    assert acc >= 0.95
