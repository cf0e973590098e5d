"""Statistics exchange, feature exchange and the 3C / 9C label construction."""

from __future__ import annotations

import torch

from auscult.augment import (derangement, exchange_labels, feature_exchange, original_labels,
                             statistics_exchange, with_feature_exchange, with_statistics_exchange)


def test_derangement_has_no_fixed_point_and_is_seeded():
    for n in (2, 3, 17):
        for s in range(20):
            p = derangement(n, torch.Generator().manual_seed(s))
            assert sorted(p.tolist()) == list(range(n)) and (p != torch.arange(n)).all()
    assert torch.equal(derangement(9, torch.Generator().manual_seed(1)), derangement(9, torch.Generator().manual_seed(1)))


def test_statistics_exchange_gives_each_frame_the_partner_stats():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 32, 12, generator=g) * torch.rand(5, 1, 12, generator=g) * 4 + torch.randn(5, 1, 12, generator=g) * 3
    y, perm = statistics_exchange(x, generator=g)
    assert torch.allclose(y.mean(1), x[perm].mean(1), atol=1e-5)
    assert torch.allclose(y.std(1, unbiased=False), x[perm].std(1, unbiased=False), atol=1e-4)
    # the within-frame shape (standardised spectrum) is the sample's own
    z = lambda a: (a - a.mean(1, keepdim=True)) / a.std(1, unbiased=False, keepdim=True)
    assert torch.allclose(z(y), z(x), atol=1e-3)


def test_statistics_exchange_with_channels_and_given_perm():
    x = torch.randn(3, 2, 8, 6)
    perm = torch.tensor([2, 0, 1])
    y, p = statistics_exchange(x, perm=perm)
    assert torch.equal(p, perm)
    assert torch.allclose(y.mean(2), x[perm].mean(2), atol=1e-5)


def test_label_construction_layout():
    y = torch.tensor([0, 2, 1])
    perm = torch.tensor([1, 2, 0])
    ex = exchange_labels(y, perm, 3)
    orig = original_labels(y, 3)
    assert ex.shape == orig.shape == (3, 9)
    assert ex[0].tolist() == [0, 0, 0, 0.5, 0, 0, 0, 0, 0.5]  # own class 0 in block 1, partner's 2 in block 2
    assert orig[1].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert torch.allclose(ex.sum(1), torch.ones(3)) and torch.allclose(orig.sum(1), torch.ones(3))


def test_feature_exchange_swaps_the_second_branch():
    e = torch.randn(4, 256)
    out, perm = feature_exchange(e, 128, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :128], e[:, :128]) and torch.equal(out[:, 128:], e[perm, 128:])


def test_composed_exchanges_give_9c_labels_with_documented_layout():
    g = torch.Generator().manual_seed(0)
    c = 4
    x, y = torch.randn(6, 16, 10), torch.tensor([0, 1, 2, 3, 0, 1])
    xs, ls = with_statistics_exchange(x, y, c, append=True, generator=g)
    assert xs.shape == (12, 16, 10) and ls.shape == (12, 3 * c)
    emb = torch.randn(12, 8)  # stands in for the network output of xs
    ef, lf = with_feature_exchange(emb, ls, split=4, append=True, generator=g)
    assert ef.shape == (24, 8) and lf.shape == (24, 9 * c)
    assert torch.allclose(lf.sum(1), torch.ones(24))
    # originals of originals: column 0*3C + 0*C + y
    assert torch.equal(lf[:6].argmax(1), y)
    # feature-exchange block 0 = rows 0..11 with exactly the statistics-exchange labels
    assert torch.equal(lf[:12, : 3 * c], ls) and (lf[:12, 3 * c:] == 0).all()
    # exchanged rows: nothing in block 0, half the mass in each of blocks 1 and 2
    assert (lf[12:, : 3 * c] == 0).all()
    assert torch.allclose(lf[12:, 3 * c: 6 * c].sum(1), torch.full((12,), 0.5))
    assert torch.allclose(lf[12:, 6 * c:].sum(1), torch.full((12,), 0.5))
    # block 1 of the feature exchange holds half of the row's own statistics-exchange label
    assert torch.allclose(lf[12:, 3 * c: 6 * c], 0.5 * ls)


def test_composed_labels_train_subcluster_adacos():
    """The 9C soft labels plug into sub-cluster AdaCos and the classifier learns the exchange task."""
    from auscult.losses import SubClusterAdaCos

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    c = 2
    base = torch.randn(c, 16, 1) * 2
    y = torch.arange(c).repeat(8)
    x = base[y] + 0.3 * torch.randn(16, 16, 10, generator=g)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(160, 16))
    loss = SubClusterAdaCos(emb_dim=16, n_classes=9 * c, n_subclusters=2, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        xs, ls = with_statistics_exchange(x, y, c, generator=g)  # published mode: replace with p = 0.5
        ef, lf = with_feature_exchange(net(xs), ls, split=8, generator=g)
        value = loss(ef, lf)
        first = float(value.detach()) if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert torch.isfinite(value) and float(value.detach()) < 0.8 * first


def test_replace_mode_exchanges_a_fraction_p_and_labels_follow():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 8, 5), torch.arange(400) % 3
    xs, ls = with_statistics_exchange(x, y, 3, p=0.3, generator=g)
    assert xs.shape == x.shape and ls.shape == (400, 9)
    exchanged = ls[:, :3].sum(1) == 0
    assert abs(float(exchanged.float().mean()) - 0.3) < 0.07
    assert torch.equal(xs[~exchanged], x[~exchanged])
    assert not torch.isclose(xs[exchanged], x[exchanged]).all(dim=(1, 2)).any()
    xs0, ls0 = with_statistics_exchange(x, y, 3, p=0.0, generator=g)
    assert torch.equal(xs0, x) and torch.equal(ls0, original_labels(y, 3))
