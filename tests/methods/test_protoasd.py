"""ProtoASD: balanced N x K fine-tuning batches, the epoch-prototype loss and its recomputation,
the Mahalanobis score against a direct computation, and a short fit on an easy synthetic set."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auscult.errors import ConfigError, DataError
from auscult.methods import FitContext, build_method
from auscult.methods.protoasd import EpochPrototypes, ProtoASD, attribute_class, prototype_loss

SR, DUR = 16000, 2.0  # the easy set's geometry (tests/methods/conftest.py)


def small_config(**finetune):
    return {
        "method": "protoasd",
        "features": {"n_mels": 64},
        "net": {"name": "resnet18_tfap"},
        "train": {"epochs": 15, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                  "weight_decay": 5e-5},
        "protoasd": {"crop_frames": 32, "crop_hop": 16,
                     "finetune": {"epochs": 5, "n_classes": 4, "n_per_class": 4, "n_batches": 6, "milestones": [],
                                  **finetune}},
    }


# ---- pieces -------------------------------------------------------------------------------------
def test_balanced_finetune_batches_hold_n_classes_times_k_clips(easy):
    from auscult.data.datasets import ClipDataset

    train, _, audio = easy
    method = ProtoASD(small_config(n_classes=3, n_per_class=5), FitContext(seed=0))
    classes = sorted({attribute_class(c) for c in train})
    targets = [classes.index(attribute_class(c)) for c in train]
    loader = method.finetune_loader(ClipDataset(train, audio, targets=targets), train, targets)
    n_batches = 0
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        for x, y, i in loader:
            n_batches += 1
            assert x.shape == (15, int(SR * DUR))
            counts = Counter(y.tolist())
            assert len(counts) == 3 and set(counts.values()) == {5}, counts
            assert [targets[int(j)] for j in i] == y.tolist()
    assert n_batches == 2 * len(loader) > 0


def test_prototype_loss_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(6, 5, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    protos = F.normalize(torch.randn(9, 5, generator=g), dim=1)
    owner = torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2])
    got = prototype_loss(emb, labels, protos, owner, temperature=0.07)
    z = F.normalize(emb, dim=1)
    total = 0.0
    for i in range(6):
        s = [float(z[i] @ protos[p]) / 0.07 for p in range(9)]
        lse = math.log(sum(math.exp(v) for v in s))
        pos = [p for p in range(9) if int(owner[p]) == int(labels[i])]
        total += -sum(s[p] - lse for p in pos) / len(pos)
    assert float(got) == pytest.approx(total / 6, rel=1e-5)
    # pulling an embedding onto its class prototypes lowers the loss
    e = emb.clone().requires_grad_(True)
    opt = torch.optim.SGD([e], lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = prototype_loss(e, labels, protos, owner)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_epoch_prototypes_are_class_means_plus_subset_means():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(20, 4, generator=g)
    labels = torch.tensor([0] * 8 + [1] * 12)
    p = EpochPrototypes()
    torch.manual_seed(0)
    p.compute(emb, labels, n_classes=2, n_sub=3, ratio=0.25, epoch=4)
    assert int(p.epoch) == 4 and p.prototypes.shape == (8, 4)
    assert p.owner.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    z = F.normalize(emb, dim=1)
    torch.testing.assert_close(p.prototypes[0], F.normalize(z[:8].mean(0), dim=0))
    torch.testing.assert_close(p.prototypes[4], F.normalize(z[8:].mean(0), dim=0))
    # each sub-prototype is the normalised mean of some 25% subset of its class (2 of 8 / 3 of 12)
    import itertools

    for row, (lo, hi, k) in zip((1, 5), ((0, 8, 2), (8, 20, 3))):
        cands = [F.normalize(z[list(c)].mean(0), dim=0) for c in itertools.combinations(range(lo, hi), k)]
        assert min(float((p.prototypes[row] - c).norm()) for c in cands) < 1e-6
    # checkpoint round trip restores the shapes of the epoch's prototypes
    q = EpochPrototypes()
    q.load_state_dict(p.state_dict())
    assert torch.equal(q.prototypes, p.prototypes) and int(q.epoch) == 4


def test_recipe_errors_are_typed():
    with pytest.raises(ConfigError, match="protoasd"):
        build_method("protoasd", {**small_config(), "protoasd": {"crops": 3}})
    with pytest.raises(ConfigError, match="finetune"):
        build_method("protoasd", {**small_config(), "protoasd": {"finetune": {"n_clases": 3}}})
    with pytest.raises(ConfigError, match="multistep"):
        build_method("protoasd", {**small_config(), "train": {"schedule": "multistep"}})


# ---- a short fit ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(easy, one_thread):
    train, test, audio = easy
    method = build_method("protoasd", small_config(), FitContext(seed=0, quiet=True))
    method.fit(train, [], audio)
    return method, method.score(test, audio)


def test_fit_is_well_formed_and_round_trips(fitted, easy):
    from auscult.backends.mahalanobis import estimate_covariance

    method, scores = fitted
    train, test, audio = easy
    assert scores.shape == (len(test),) and np.isfinite(scores).all() and (scores >= 0).all()
    # the score is the minimum Mahalanobis distance to the section's attribute prototypes, with the
    # covariance of all of the section's training embeddings (Ledoit-Wolf)
    emb_tr, emb_te = method.embed(train, audio), method.embed(test, audio)
    for sec in ("00", "01"):
        rows = [i for i, c in enumerate(train) if c.section == sec]
        x = emb_tr[rows].astype(np.float64)
        prec = np.linalg.inv(estimate_covariance(x, "ledoit-wolf"))
        names = sorted({attribute_class(train[i]) for i in rows})
        assert {n.split("/")[2] for n in names} == {"source", "target"}  # both domains' prototypes
        protos = [x[[attribute_class(train[i]) == n for i in rows]].mean(0) for n in names]
        for j, c in enumerate(test):
            if c.section == sec:
                d = [float(np.sqrt((emb_te[j] - p) @ prec @ (emb_te[j] - p))) for p in protos]
                assert scores[j] == pytest.approx(min(d), rel=1e-6)
    # a training clip is scored leave-one-out: prototypes and covariance without it
    sec_rows = [i for i, c in enumerate(train) if c.section == "00"]
    k = sec_rows[0]
    rest = [i for i in sec_rows if i != k]
    x = emb_tr[rest].astype(np.float64)
    prec = np.linalg.inv(estimate_covariance(x, "ledoit-wolf"))
    names = sorted({attribute_class(train[i]) for i in rest})
    protos = [x[[attribute_class(train[i]) == n for i in rest]].mean(0) for n in names]
    # the clip's embedding as the score computes it (a batch of one): the batched embedding above differs
    # by float32 convolution rounding (~4e-8 absolute), which this leave-one-out distance amplifies to
    # ~3e-5 relative on the simulator's one-product-line units; the formula itself matches to ~1e-15
    e_k = method.embed([train[k]], audio)[0]
    want = min(float(np.sqrt((e_k - p) @ prec @ (e_k - p))) for p in protos)
    assert method.score([train[k]], audio)[0] == pytest.approx(want, rel=1e-9)
    fresh = build_method("protoasd", small_config(), FitContext(seed=0, quiet=True))
    fresh.load_state_dict(copy.deepcopy(method.state_dict()))
    np.testing.assert_array_equal(fresh.score(test, audio), scores)
    with pytest.raises(DataError, match="section"):
        method.score([c.__class__(**{**c.__dict__, "section": "07"}) for c in test[:1]], audio)


def test_losses_go_down(fitted):
    method, _ = fitted
    for stage in ("pretrain", "finetune"):
        losses = [h["train_loss"] for h in method.history[stage]]
        assert np.isfinite(losses).all()
        assert np.mean(losses[-2:]) < np.mean(losses[:2]), (stage, losses)


def test_detects_gross_anomalies_on_every_seed(fitted, easy, tmp_path, noisy_copies):
    """What a short CPU fit of ProtoASD detects reliably: normal clips with 0 dB of white noise added.

    This replaces a test that asserted mean AUC > 0.6 on the easy fan faults, a seed lottery. Over
    training seeds 0-7 (this set-up, one thread, `benchmarks/seed_spread.py protoasd --seeds 0-7`)
    that AUC was 0.635 +- 0.084 (pass rate 6/8, range 0.50-0.76; emulated AVX2-only CPU, seeds 0-2:
    0.649 +- 0.028, every seed's value moved); with 25 + 25 test clips per domain 0.708 +- 0.076
    (7/8); with 4 sections (2x the fit) and 10 + 10 test clips 0.727 +- 0.061 (8/8, range 0.61-0.79).
    Averaging the scores of 2 seeds (2x the fit): 0.729 +- 0.048 (seed pairs 0-11, 50 + 50 test clips).
    ProtoASD does learn the faults on average, but a bar 4 seed-stds below the mean would be
    below chance + 3 chance-stds in every set-up tried and within budget (~10-30 s per fit here), so that
    figure lives in docs/methods/protoasd.md ("When it works and when it does not"), not in a test.

    The statistic asserted here: per section, the AUC of the 12 normal test clips against their
    copies with white noise of the clip's own power added (fixture `noisy_copies`), averaged over
    the 2 sections. Seeds 0-7 (`seed_spread.py protoasd --seeds 0-7 --gross`): 0.980 +- 0.036, range
    0.917-1.0, lowest single section 0.833; emulated AVX2-only CPU, seeds 0-2: 0.969 +- 0.043;
    channels-last training (`AUSCULT_FASTPATH=train_channels_last=1`), seeds 0-3: 0.976 +- 0.040.
    Chance level: std 0.085 for this test size (12 vs 12 per section, 2 sections). The bar 0.8 is
    5.0 seed-stds below the mean and 3.5 chance-stds above 0.5; negated scores give 0.0 (measured,
    seed 0: `--negate`), random scores ~0.5 +- 0.085: both fail.
    """
    from auscult.eval.metrics import auc

    method, scores = fitted
    _, test, audio = easy
    y = np.array([c.label == "anomaly" for c in test])
    easy_aucs = [auc(y[m], scores[m]) for m in (np.array([c.section == s for c in test]) for s in ("00", "01"))]
    print("ProtoASD easy synthetic faults, AUC per section (not asserted):", [round(a, 3) for a in easy_aucs])
    gross = noisy_copies(test, tmp_path)
    gs = method.score(gross, audio)
    aucs = []
    for sec in ("00", "01"):
        sn = scores[[i for i, c in enumerate(test) if c.section == sec and c.label == "normal"]]
        sg = gs[[i for i, c in enumerate(gross) if c.section == sec]]
        assert len(sn) == len(sg) == 12
        aucs.append(auc([0] * len(sn) + [1] * len(sg), np.r_[sn, sg]))
    print("ProtoASD normal vs +0 dB white noise, AUC per section:", [round(a, 3) for a in aucs])
    assert np.mean(aucs) > 0.8, aucs


def test_interrupted_fit_resumes_to_identical_scores(easy, one_thread, interrupted_fit):
    """Kill the pre-training mid-epoch (after a step checkpoint) and resume: the epoch's prototypes,
    weights and RNG come back, so both stages end as in an uninterrupted fit."""
    import auscult.methods.protoasd as mod

    train, test, audio = easy
    sub = [c for c in train if c.section == "00"][:12]
    cfg = small_config(epochs=1, n_batches=1)
    cfg["train"] = {**cfg["train"], "epochs": 2, "checkpoint_every_steps": 1}
    ref, resumed = interrupted_fit("protoasd", cfg, sub, audio, mod, "prototype_loss", kill_at=3)
    np.testing.assert_array_equal(resumed.score(test[:4], audio), ref.score(test[:4], audio))
