"""Walk LOSSES: every registered loss gets finite gradients, handles edge cases and solves a toy problem.

A new loss must be added to ``KIND`` below (the first test fails until it is), so it is tested the
day it is registered.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auscult.losses import LOSSES, momentum_update

# how each loss is called: "class" = loss(emb, hard_labels); "moco" = loss(query, key)
KIND = {
    "arcface": "class",
    "noisy_arcmix": "class",
    "subcluster_adacos": "class",
    "supcon": "class",
    "prototypical": "class",
    "prototypical_multi": "class",
    "prototypical_negative": "class",
    "prototypical_robust": "class",
    "infonce_moco": "moco",
}
EMB, C = 16, 3


def build(name: str) -> nn.Module:
    kw = {"emb_dim": EMB, "n_classes": C}
    if name == "infonce_moco":
        kw["queue_size"] = 64
        kw["seed"] = 0
    if name == "subcluster_adacos":
        kw["seed"] = 0
    return LOSSES.build(name, **kw)


def call(name: str, loss: nn.Module, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if KIND[name] == "moco":
        return loss(emb, emb.detach() + 0.05 * torch.randn_like(emb))
    return loss(emb, y)


def test_every_registered_loss_has_a_toy_spec():
    assert set(LOSSES.names()) == set(KIND), "add new losses to KIND and give them a toy problem"


@pytest.mark.parametrize("name", sorted(KIND))
def test_gradients_finite(name):
    torch.manual_seed(0)
    loss = build(name).train()
    emb = torch.randn(12, EMB, requires_grad=True)
    y = torch.arange(12) % C
    value = call(name, loss, emb, y)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    for p in loss.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", sorted(KIND))
def test_one_class_in_batch(name):
    torch.manual_seed(1)
    loss = build(name).train()
    emb = torch.randn(6, EMB, requires_grad=True)
    y = torch.full((6,), 2)
    value = call(name, loss, emb, y)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("name", sorted(KIND))
def test_extreme_embeddings_stay_finite(name):
    """Huge, tiny and exactly centre-aligned embeddings (cos = +-1) give finite loss and gradients."""
    loss = build(name).train()
    rows = [torch.full((EMB,), 1e6), torch.full((EMB,), 1e-6), torch.zeros(EMB) + 1.0, -torch.ones(EMB)]
    for attr in ("weight", "centers"):
        w = getattr(loss, attr, None)
        if isinstance(w, torch.Tensor):
            rows += [w[0].detach().clone(), -w[0].detach().clone()]
    emb = torch.stack(rows).requires_grad_(True)
    y = torch.arange(len(rows)) % C
    value = call(name, loss, emb, y)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(emb.grad).all()


def gaussian_classes(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian classes in 12-d: class signal in 2 dims, large nuisance noise in the other 10."""
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[4.0, 0.0], [-2.0, 3.5], [-2.0, -3.5]])
    y = torch.arange(C).repeat_interleave(n_per_class)
    sig = means[y] + torch.randn(len(y), 2, generator=g)
    nuisance = 6.0 * torch.randn(len(y), 10, generator=g)
    return torch.cat([sig, nuisance], 1), y


def nearest_mean_accuracy(train_z, train_y, test_z, test_y) -> float:
    z_tr, z_te = F.normalize(train_z, dim=1), F.normalize(test_z, dim=1)
    protos = F.normalize(torch.stack([z_tr[train_y == c].mean(0) for c in range(C)]), dim=1)
    return float(((z_te @ protos.T).argmax(1) == test_y).float().mean())


def own_and_other_cosine(train_z, train_y, test_z, test_y) -> tuple[float, float]:
    """Mean cosine of test embeddings to their own class prototype and to the other prototypes."""
    protos = F.normalize(torch.stack([F.normalize(train_z, dim=1)[train_y == c].mean(0) for c in range(C)]), dim=1)
    s = F.normalize(test_z, dim=1) @ protos.T
    own = s[torch.arange(len(test_y)), test_y]
    other = (s.sum(1) - own) / (C - 1)
    return float(own.mean()), float(other.mean())


def make_encoder(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, EMB))


@pytest.mark.parametrize("name", sorted(n for n, k in KIND.items() if k == "class"))
def test_toy_problem_separates_three_gaussian_classes(name):
    x_tr, y_tr = gaussian_classes(100, seed=0)
    x_te, y_te = gaussian_classes(100, seed=1)
    enc = make_encoder(0)
    loss = build(name).train()
    with torch.no_grad():
        before = nearest_mean_accuracy(enc(x_tr), y_tr, enc(x_te), y_te)
        own_before, other_before = own_and_other_cosine(enc(x_tr), y_tr, enc(x_te), y_te)
    opt = torch.optim.Adam(list(enc.parameters()) + list(loss.parameters()), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randperm(len(y_tr), generator=g)[:60]
        opt.zero_grad()
        value = loss(enc(x_tr[idx]), y_tr[idx])
        value.backward()
        opt.step()
    enc.eval(), loss.eval()
    with torch.no_grad():
        z_tr, z_te = enc(x_tr), enc(x_te)
        after = nearest_mean_accuracy(z_tr, y_tr, z_te, y_te)
        own_after, other_after = own_and_other_cosine(z_tr, y_tr, z_te, y_te)
    assert before < 0.8, f"toy problem too easy (untrained accuracy {before:.2f})"
    assert after >= 0.95, f"{name}: nearest-prototype accuracy {after:.2f} (untrained {before:.2f})"
    # embeddings are pulled to their own class prototype and pushed from the others
    assert own_after > own_before
    gap_before, gap_after = own_before - other_before, own_after - other_after
    assert gap_after > gap_before + 0.3, f"{name}: own-other cosine gap {gap_before:.2f} -> {gap_after:.2f}"
    if name in ("arcface", "noisy_arcmix"):
        acc = float((loss.cosine(z_te).argmax(1) == y_te).float().mean())
        assert acc >= 0.95, f"{name}: classifier accuracy {acc:.2f}"
    if name == "subcluster_adacos":
        acc = float((loss.class_log_probs(z_te).argmax(1) == y_te).float().mean())
        assert acc >= 0.95, f"adacos classifier accuracy {acc:.2f}"


def test_toy_problem_moco_learns_view_invariance():
    """Two views differ only in nuisance dims; InfoNCE+MoCo makes a query retrieve its own key."""
    g = torch.Generator().manual_seed(0)

    def views(n):
        content = torch.randn(n, 6, generator=g)
        v1 = torch.cat([content, 3 * torch.randn(n, 6, generator=g)], 1)
        v2 = torch.cat([content, 3 * torch.randn(n, 6, generator=g)], 1)
        return v1, v2

    enc_q = make_encoder(0)
    enc_k = make_encoder(0)
    enc_k.load_state_dict(enc_q.state_dict())
    loss = LOSSES.build("infonce_moco", emb_dim=EMB, queue_size=256, temperature=0.1, seed=0).train()

    def retrieval(n=200):
        a, b = views(n)
        with torch.no_grad():
            q, k = F.normalize(enc_q(a), dim=1), F.normalize(enc_k(b), dim=1)
        return float(((q @ k.T).argmax(1) == torch.arange(n)).float().mean())

    before = retrieval()
    opt = torch.optim.Adam(enc_q.parameters(), lr=3e-3)
    for _ in range(250):
        a, b = views(64)
        with torch.no_grad():
            k = enc_k(b)
        opt.zero_grad()
        loss(enc_q(a), k).backward()
        opt.step()
        momentum_update(enc_k, enc_q, m=0.9)
    after = retrieval()
    assert after > max(0.6, 2 * before), f"retrieval {before:.2f} -> {after:.2f}"
    assert math.isfinite(after)


@pytest.mark.parametrize("name", sorted(KIND))
def test_builds_with_common_arguments_and_rejects_typos(name):
    assert isinstance(LOSSES.build(name, emb_dim=8, n_classes=4), nn.Module)
    with pytest.raises(TypeError):
        LOSSES.build(name, emb_dim=8, n_classes=4, temprature=0.1)


@pytest.mark.parametrize("name", sorted(KIND))
def test_state_dict_roundtrip_reproduces_the_loss(name):
    torch.manual_seed(3)
    a = build(name).train()
    emb, y = torch.randn(12, EMB), torch.arange(12) % C
    k = emb + 0.1 * torch.randn(12, EMB)
    run = (lambda m: m(emb, k)) if KIND[name] == "moco" else (lambda m: m(emb, y))
    run(a)  # moves adaptive state (AdaCos scale, MoCo queue)
    b = build(name)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    if hasattr(a, "generator"):
        a.generator.manual_seed(0), b.generator.manual_seed(0)
    assert torch.allclose(run(a), run(b))


@pytest.mark.parametrize("name", sorted(KIND))
def test_low_precision_embeddings(name):
    """bfloat16 embeddings (as under autocast) give a finite float loss and finite gradients."""
    torch.manual_seed(4)
    loss = build(name).train()
    emb = torch.randn(12, EMB).bfloat16().requires_grad_(True)
    y = torch.arange(12) % C
    value = call(name, loss, emb, y)
    assert torch.isfinite(value.float())
    value.float().backward()
    assert torch.isfinite(emb.grad.float()).all()
