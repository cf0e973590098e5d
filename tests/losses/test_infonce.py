"""InfoNCE + MoCo: logits, the FIFO queue, checkpointing and the momentum update."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from auscult.losses import InfoNCEMoCo, momentum_update


def test_logits_positive_first_and_loss_is_ce_at_zero():
    torch.manual_seed(0)
    loss = InfoNCEMoCo(emb_dim=4, queue_size=5, temperature=0.5, seed=0).eval()
    q, k = torch.randn(3, 4), torch.randn(3, 4)
    z = loss.logits(q, k)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    assert torch.allclose(z[:, 0], (qn * kn).sum(1) / 0.5, atol=1e-6)
    assert torch.allclose(z[:, 1:], qn @ loss.queue.T / 0.5, atol=1e-6)
    assert torch.allclose(loss(q, k), F.cross_entropy(z, torch.zeros(3, dtype=torch.long)))


def test_queue_is_fifo_bounded_and_only_filled_in_training():
    loss = InfoNCEMoCo(emb_dim=3, queue_size=4, seed=0)
    keys = [F.normalize(torch.randn(3, 3), dim=1) for _ in range(3)]
    loss.eval()(keys[0], keys[0])
    before = loss.queue.clone()
    assert torch.equal(loss.queue, before)
    loss.train()
    for k in keys:  # 9 keys through a queue of 4
        loss(k, k)
    assert loss.queue.shape == (4, 3)
    assert int(loss.ptr) == 9 % 4
    newest = torch.cat(keys)[-4:]  # the last four keys, in FIFO slot order
    order = [(9 - 4 + i) % 4 for i in range(4)]
    assert torch.allclose(loss.queue[order], newest, atol=1e-6)


def test_queue_saved_and_restored_with_state_dict():
    a = InfoNCEMoCo(emb_dim=3, queue_size=6, seed=0).train()
    a(torch.randn(4, 3), torch.randn(4, 3))
    b = InfoNCEMoCo(emb_dim=3, queue_size=6, seed=1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.queue, b.queue) and int(a.ptr) == int(b.ptr) == 4


def test_momentum_update_formula_and_buffers():
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    k = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    q(torch.randn(8, 3))  # changes q's BN running stats
    k0 = {n: p.detach().clone() for n, p in k.named_parameters()}
    momentum_update(k, q, m=0.99)
    for n, p in k.named_parameters():
        ref = 0.99 * k0[n] + 0.01 * dict(q.named_parameters())[n].detach()
        assert torch.allclose(p, ref)
    assert torch.equal(k[1].running_mean, q[1].running_mean)
    momentum_update(k, q, m=0.0)
    for (_, pk), (_, pq) in zip(k.named_parameters(), q.named_parameters()):
        assert torch.equal(pk, pq)
