"""Pre-normalisation (frozen after warm-up) and post-normalisation."""

from __future__ import annotations

import numpy as np
import torch

from auscult.augment import PostNorm, PreNorm, post_norm


def test_post_norm_zero_mean_unit_variance():
    x = torch.randn(8, 16, 30) * 7 + 3
    y = post_norm(x)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.var(unbiased=False)) - 1) < 1e-4
    y = PostNorm(dims=(1, 2))(x)
    assert torch.allclose(y.mean(dim=(1, 2)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(y.var(dim=(1, 2), unbiased=False), torch.ones(8), atol=1e-4)


def test_pre_norm_learns_dataset_stats_then_freezes():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 10, 20, generator=g) * (i + 1) + i for i in range(3)]
    pre = PreNorm(warmup_batches=3).train()
    for b in batches:
        pre(b)
    everything = torch.cat(batches).double().numpy()
    assert abs(float(pre.mean) - everything.mean()) < 1e-9
    assert abs(float(pre.var) - everything.var()) < 1e-8
    assert pre.frozen
    mean, var = float(pre.mean), float(pre.var)
    pre(torch.randn(4, 10, 20) * 100 + 50)  # after warm-up: no change
    assert float(pre.mean) == mean and float(pre.var) == var
    y = pre(torch.cat(batches))
    assert abs(float(y.mean())) < 1e-4 and abs(float(y.std(unbiased=False)) - 1) < 1e-4


def test_pre_norm_eval_does_not_update_and_state_roundtrip():
    pre = PreNorm(warmup_batches=5).eval()
    pre(torch.randn(3, 4) + 10)
    assert int(pre.batches_seen) == 0
    pre.train()(torch.randn(3, 4) + 10)
    other = PreNorm(warmup_batches=5)
    other.load_state_dict(pre.state_dict())
    assert float(other.mean) == float(pre.mean) and int(other.batches_seen) == 1
    fixed = PreNorm(warmup_batches=5)
    fixed.set_stats(2.0, 4.0)
    assert fixed.frozen
    assert torch.allclose(fixed.train()(torch.tensor([6.0])), torch.tensor([1.0]))
