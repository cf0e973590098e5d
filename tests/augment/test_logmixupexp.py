"""Log-mixup-exp and its FIFO memory bank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auscult.augment import LogMixupExp, MemoryBank, log_mixup_exp
from auscult.errors import ConfigError


def test_formula_and_between_inputs_in_linear_domain():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, 10, generator=g) * 3
    o = torch.randn(16, 8, 10, generator=g) * 3
    lam = torch.rand(16, generator=g)
    out = log_mixup_exp(x, o, lam)
    l = lam.view(-1, 1, 1).double()
    ref = np.log((1 - l.numpy()) * np.exp(x.double().numpy()) + l.numpy() * np.exp(o.double().numpy()))
    assert np.allclose(out.double().numpy(), ref, atol=1e-5)
    lo, hi = torch.minimum(x, o), torch.maximum(x, o)
    assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all()


def test_lambda_edges_and_large_values_are_stable():
    x = torch.full((2, 3), 200.0)
    o = torch.full((2, 3), -200.0)
    assert torch.allclose(log_mixup_exp(x, o, 0.0), x)
    assert torch.allclose(log_mixup_exp(x, o, 1.0), o)
    assert torch.isfinite(log_mixup_exp(x, o, 0.3)).all()


def test_bank_is_fifo_and_bounded():
    bank = MemoryBank(size=5)
    for start in range(0, 12, 3):  # items 0..11 in batches of 3
        bank.push(torch.arange(start, start + 3, dtype=torch.float32).view(3, 1))
    assert len(bank) == 5 and bank.data.shape[0] == 5
    assert bank.items().flatten().tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    bank.push(torch.arange(100, 108, dtype=torch.float32).view(8, 1))  # bigger than the bank
    assert bank.items().flatten().tolist() == [103.0, 104.0, 105.0, 106.0, 107.0]
    samples = bank.sample(200, torch.Generator().manual_seed(0)).flatten()
    assert set(samples.tolist()) <= {103.0, 104.0, 105.0, 106.0, 107.0}


def test_bank_partial_fill_samples_only_stored_items_and_checks_shape():
    bank = MemoryBank(size=10)
    bank.push(torch.ones(2, 4))
    assert bank.items().shape == (2, 4)
    assert (bank.sample(50, torch.Generator().manual_seed(0)) == 1).all()
    with pytest.raises(ConfigError):
        bank.push(torch.ones(2, 5))
    with pytest.raises(ConfigError):
        MemoryBank(size=3).sample(1)


def test_bank_state_dict_roundtrip():
    a = MemoryBank(size=4)
    a.push(torch.randn(3, 2, 2))
    b = MemoryBank(size=4)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.items(), b.items()) and len(b) == 3


def test_module_stores_unmixed_inputs_and_lambda_range():
    g = torch.Generator().manual_seed(0)
    aug = LogMixupExp(bank_size=8, alpha=0.4).train()
    first = torch.randn(4, 3, 5, generator=g)
    assert torch.equal(aug(first, g), first), "empty bank: nothing to mix with"
    lams = []
    for _ in range(30):
        x = torch.randn(4, 3, 5, generator=g)
        out = aug(x, g)
        assert not torch.equal(out, x)
        assert torch.equal(aug.bank.items()[-4:], x), "bank holds the un-mixed inputs"
        lams.append(aug.last_lam)
    lam = torch.cat(lams)
    assert lam.min() >= 0 and lam.max() <= 0.4 and lam.max() > 0.3
    assert len(aug.bank) == 8
    x = torch.randn(4, 3, 5)
    assert torch.equal(aug.eval()(x), x)
