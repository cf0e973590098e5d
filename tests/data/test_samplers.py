"""Balanced N x K batch sampler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from auscult.data.clip import Clip
from auscult.data.samplers import BalancedBatchSampler
from auscult.errors import ConfigError


def labelled(n_classes=6, per_class=(30, 12, 7, 50, 3, 20)):
    labels, domains = [], []
    for c in range(n_classes):
        for i in range(per_class[c]):
            labels.append(f"attr{c}")
            domains.append("target" if i < 2 else "source")
    return labels, domains


def test_batches_hold_n_classes_times_k_clips():
    labels, _ = labelled()
    s = BalancedBatchSampler(labels, n_classes=4, n_per_class=5, n_batches=30, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 30
    for b in batches:
        assert len(b) == 20
        counts = Counter(labels[i] for i in b)
        assert len(counts) == 4 and set(counts.values()) == {5}


def test_every_class_represented_evenly():
    labels, _ = labelled()
    s = BalancedBatchSampler(labels, n_classes=4, n_per_class=2, n_batches=30, seed=1)
    visits = Counter()
    for b in s:
        visits.update({labels[i] for i in b})
    assert set(visits) == set(labels)
    assert max(visits.values()) - min(visits.values()) <= 1, visits


def test_within_class_draws_cycle_through_all_clips():
    labels, _ = labelled()
    s = BalancedBatchSampler(labels, n_classes=6, n_per_class=7, n_batches=1, seed=0)
    (batch,) = list(s)
    for c in range(6):
        got = [i for i in batch if labels[i] == f"attr{c}"]
        n = sum(1 for l in labels if l == f"attr{c}")
        assert len(set(got)) == min(7, n), "no repeats before a class's pool is exhausted"


def test_deterministic_with_seed_and_epoch():
    labels, domains = labelled()
    kw = dict(n_classes=3, n_per_class=4, n_batches=10, domains=domains, target_fraction=0.5)
    a = list(BalancedBatchSampler(labels, seed=7, **kw))
    b = list(BalancedBatchSampler(labels, seed=7, **kw))
    c = list(BalancedBatchSampler(labels, seed=8, **kw))
    assert a == b and a != c
    s = BalancedBatchSampler(labels, seed=7, **kw)
    s.set_epoch(1)
    assert list(s) != a


def test_target_domain_is_oversampled():
    labels, domains = labelled()
    per_class = (30, 12, 7, 50, 3, 20)
    expected_uniform = sum(2 / n for n in per_class) / len(per_class)  # balanced classes, uniform clips
    uniform = BalancedBatchSampler(labels, 6, 8, n_batches=200, seed=0, domains=domains)
    over = BalancedBatchSampler(labels, 6, 8, n_batches=200, seed=0, domains=domains, target_fraction=0.5)
    frac = lambda s: sum(domains[i] == "target" for b in s for i in b) / sum(len(b) for b in s)
    assert abs(frac(uniform) - expected_uniform) < 0.03
    # classes with both domains draw half their clips from the target domain
    assert 0.45 < frac(over) < 0.55


def test_from_clips_and_dataloader():
    clips = [Clip(path=Path(f"/x/{i}.wav"), machine="fan", section="00", domain="source" if i % 5 else "target",
                  attributes_raw=f"a_{i % 3}") for i in range(30)]
    s = BalancedBatchSampler.from_clips(clips, n_classes=3, n_per_class=2, n_batches=4, seed=0)
    loader = DataLoader(list(range(30)), batch_sampler=s)
    batches = [b.tolist() for b in loader]
    assert len(batches) == 4 and all(len(b) == 6 for b in batches)


def test_bad_config_raises():
    labels, _ = labelled()
    with pytest.raises(ConfigError):
        BalancedBatchSampler(labels, n_classes=7, n_per_class=2)
    with pytest.raises(ConfigError):
        BalancedBatchSampler(labels, n_classes=2, n_per_class=0)
    with pytest.raises(ConfigError):
        BalancedBatchSampler(labels, n_classes=2, n_per_class=2, target_fraction=0.5)
    with pytest.raises(ConfigError):
        BalancedBatchSampler([], n_classes=1, n_per_class=1)
