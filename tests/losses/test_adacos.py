"""Sub-cluster AdaCos: probabilities, soft labels, centre modes and the bounded adaptive scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from auscult.errors import ConfigError
from auscult.losses import SubClusterAdaCos


def test_initial_scale_and_defaults():
    loss = SubClusterAdaCos(emb_dim=8, n_classes=5)
    assert loss.n_subclusters == 16
    assert float(loss.scale) == pytest.approx(math.sqrt(2) * math.log(5 * 16 - 1))
    assert "scale" in loss.state_dict()


def test_class_probability_is_sum_over_subclusters():
    torch.manual_seed(0)
    loss = SubClusterAdaCos(emb_dim=8, n_classes=3, n_subclusters=4, seed=0).eval()
    emb = torch.randn(5, 8)
    logp = loss.class_log_probs(emb)
    sub = torch.softmax(loss.scale * loss.cosine(emb), dim=1).view(5, 3, 4).sum(2)
    assert torch.allclose(logp.exp(), sub, atol=1e-6)
    assert torch.allclose(logp.exp().sum(1), torch.ones(5), atol=1e-6)


def test_soft_labels_match_hard_and_mix_linearly():
    torch.manual_seed(0)
    loss = SubClusterAdaCos(emb_dim=8, n_classes=3, n_subclusters=2, adaptive=False, seed=0)
    emb = torch.randn(4, 8)
    y = torch.tensor([0, 1, 2, 1])
    assert torch.allclose(loss(emb, y), loss(emb, F.one_hot(y, 3).float()))
    y2 = torch.tensor([1, 2, 0, 0])
    soft = 0.3 * F.one_hot(y, 3).float() + 0.7 * F.one_hot(y2, 3).float()
    assert torch.allclose(loss(emb, soft), 0.3 * loss(emb, y) + 0.7 * loss(emb, y2), atol=1e-6)


def test_fixed_centres_are_buffers_trainable_are_parameters():
    fixed = SubClusterAdaCos(emb_dim=8, n_classes=2, seed=0)
    train = SubClusterAdaCos(emb_dim=8, n_classes=2, trainable_centers=True, seed=0)
    assert len(list(fixed.parameters())) == 0 and "centers" in dict(fixed.named_buffers())
    assert [n for n, _ in train.named_parameters()] == ["centers"]
    assert torch.equal(fixed.centers, train.centers.detach()), "same seed, same centres"


def test_scale_adapts_in_training_only():
    torch.manual_seed(0)
    loss = SubClusterAdaCos(emb_dim=8, n_classes=3, n_subclusters=4, seed=0)
    emb, y = torch.randn(16, 8), torch.arange(16) % 3
    s0 = float(loss.scale)
    loss.eval()(emb, y)
    assert float(loss.scale) == s0
    loss.train()(emb, y)
    assert float(loss.scale) != s0
    assert loss.min_scale <= float(loss.scale) <= loss.max_scale


def published_scale_update(s: float, cos: torch.Tensor, y_rep: torch.Tensor, y: torch.Tensor) -> float:
    """The published sub-cluster AdaCos update (float32, shifted exponentials, all centres in B_avg)."""
    logits = s * cos
    m = logits.max()
    b_avg = torch.exp(logits - m).sum(1).mean()
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    theta_class = (y_rep * theta).sum(1) * (y > 0).sum(1)
    theta_med = theta_class.median()
    return float((m + torch.log(b_avg)) / torch.cos(torch.clamp(theta_med, max=math.pi / 4)))


def test_scale_stays_bounded_where_the_published_update_blows_up():
    """Half the batch sits on centres (cos ~ 1) while the median angle statistic exceeds pi/4: the
    published rule multiplies the scale by ~1.4 per step and overflows; ours stays finite and clamped."""
    torch.manual_seed(0)
    c, k, d = 4, 16, 32
    loss = SubClusterAdaCos(emb_dim=d, n_classes=c, n_subclusters=k, seed=0).train()
    emb = torch.randn(32, d)
    y = torch.arange(32) % c
    for i in range(16):  # exactly on one of its own class's centres
        emb[i] = loss.centers[int(y[i]) * k + i % k]
    y_soft = F.one_hot(y, c).float()
    cos = loss.cosine(emb).detach().float()
    y_rep = y_soft.repeat_interleave(k, dim=1)

    s = float(loss.scale)
    history = []
    for _ in range(300):
        s = published_scale_update(s, cos, y_rep, y_soft)
        history.append(s)
        if not math.isfinite(s):
            break
    assert not math.isfinite(history[-1]) or history[-1] > 1e6, "reference no longer reproduces the blow-up"

    for _ in range(300):
        value = loss(emb, y)
        assert torch.isfinite(value)
    assert math.isfinite(float(loss.scale)) and loss.min_scale <= float(loss.scale) <= loss.max_scale


def test_scale_never_goes_negative_or_nonfinite_with_degenerate_batches():
    loss = SubClusterAdaCos(emb_dim=4, n_classes=2, n_subclusters=2, seed=0).train()
    # all embeddings pointing away from every non-target centre -> log(B_avg) < 0
    emb = -loss.centers.detach().sum(0, keepdim=True).repeat(8, 1)
    for _ in range(50):
        assert torch.isfinite(loss(emb, torch.zeros(8, dtype=torch.long)))
    assert float(loss.scale) >= loss.min_scale
    # non-finite estimate (NaN embeddings) leaves the scale unchanged
    s = float(loss.scale)
    est = loss.estimate_scale(torch.full((2, 4), float("nan")), torch.eye(2), s)
    assert float(est) == pytest.approx(s)


def test_rejects_bad_config():
    with pytest.raises(ConfigError):
        SubClusterAdaCos(n_classes=1, n_subclusters=1)
    with pytest.raises(ConfigError):
        SubClusterAdaCos(n_classes=2)(torch.randn(3, 128), torch.tensor([0, 1, 5]))
