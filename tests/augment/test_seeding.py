"""Every augmentation is a pure function of its input and its generator's state."""

from __future__ import annotations

import pytest
import torch

from auscult.augment import (LogMixupExp, feature_exchange, mixup, random_frame_crop, random_resized_crop,
                             statistics_exchange)

X = torch.randn(6, 12, 30)

OPS = {
    "mixup": lambda g: mixup(X, generator=g).x,
    "mixup_per_sample": lambda g: mixup(X, dist="uniform", per_sample=True, p=0.5, generator=g).x,
    "random_resized_crop": lambda g: random_resized_crop(X, generator=g),
    "random_frame_crop": lambda g: random_frame_crop(X, 9, g),
    "statistics_exchange": lambda g: statistics_exchange(X, generator=g)[0],
    "feature_exchange": lambda g: feature_exchange(X.flatten(1), 100, generator=g)[0],
}


def _lme(g):
    aug = LogMixupExp(bank_size=16).train()
    for i in range(3):
        out = aug(X + i, g)
    return out


OPS["log_mixup_exp"] = _lme


@pytest.mark.parametrize("name", sorted(OPS))
def test_same_seed_same_output_other_seed_differs(name):
    op = OPS[name]
    a = op(torch.Generator().manual_seed(11))
    b = op(torch.Generator().manual_seed(11))
    c = op(torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()
