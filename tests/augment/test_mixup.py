"""mixup: the mix formula, the lambda distributions, probability and seeding."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from auscult.augment import Mixup, mix_labels, mixup, sample_lambda
from auscult.errors import ConfigError


def test_output_is_the_mix_with_the_returned_partner():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5)
    r = mixup(x, alpha=0.5, generator=g)
    assert sorted(r.perm.tolist()) == list(range(8))
    assert torch.allclose(r.x, r.lam * x + (1 - r.lam) * x[r.perm])
    r2 = mixup(x, alpha=0.5, per_sample=True, generator=g)
    assert r2.lam.shape == (8,)
    assert torch.allclose(r2.x, r2.lam.view(8, 1, 1) * x + (1 - r2.lam.view(8, 1, 1)) * x[r2.perm])


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_beta_lambda_distribution(alpha):
    lam = sample_lambda((20000,), alpha, "beta", torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert lam.min() >= 0 and lam.max() <= 1
    lam32 = sample_lambda((20000,), alpha, "beta", torch.Generator().manual_seed(2))
    assert lam32.dtype == torch.float32
    assert abs(float(lam32.mean()) - 0.5) < 0.02
    assert abs(float(lam32.var()) - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_uniform_lambda_distribution():
    lam = sample_lambda((20000,), 0.4, "uniform", torch.Generator().manual_seed(2)).double().numpy()
    assert lam.min() >= 0 and lam.max() <= 0.4
    assert stats.kstest(lam, stats.uniform(0, 0.4).cdf).pvalue > 1e-3


def test_probability_zero_and_fraction():
    x = torch.randn(4, 6)
    r = mixup(x, p=0.0, generator=torch.Generator().manual_seed(0))
    assert float(r.lam) == 1.0 and torch.equal(r.x, x)
    r = mixup(torch.randn(4000, 1), p=0.3, per_sample=True, generator=torch.Generator().manual_seed(0))
    assert abs(float((r.lam < 1).float().mean()) - 0.3) < 0.03


def test_seeded_runs_repeat_and_eval_module_is_identity():
    x = torch.randn(6, 4)
    a = mixup(x, generator=torch.Generator().manual_seed(5))
    b = mixup(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.x, b.x) and torch.equal(a.perm, b.perm)
    m = Mixup().eval()
    r = m(x)
    assert torch.equal(r.x, x) and float(r.lam) == 1.0


def test_mix_labels_are_distributions():
    y = torch.tensor([0, 1, 2, 1])
    perm = torch.tensor([1, 2, 3, 0])
    soft = mix_labels(y, perm, torch.tensor(0.25), 3)
    assert torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.allclose(soft[0], torch.tensor([0.25, 0.75, 0.0]))
    per = mix_labels(y, perm, torch.tensor([1.0, 0.0, 0.5, 0.5]), 3)
    assert torch.allclose(per[1], torch.tensor([0.0, 0.0, 1.0]))


def test_bad_arguments():
    with pytest.raises(ConfigError):
        mixup(torch.randn(2, 2), alpha=0)
    with pytest.raises(ConfigError):
        mixup(torch.randn(2, 2), p=1.5)
    with pytest.raises(ConfigError):
        sample_lambda((2,), 1.0, "gauss")
