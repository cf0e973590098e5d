"""SSL4ASD: feature exchange swaps exactly one branch, the label layout of the training step, a short
run on a tiny synthetic set (loss decreasing, well-formed scores, state round trip, detects a machine
sound replaced by noise; the easy-fault AUC is only printed), the k-means back-end, ensembles and the recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from auscult.data.source import AudioSource
from auscult.errors import ConfigError, DataError
from auscult.methods import FitContext, build_method
from auscult.recipes import load_recipe

MACHINES = ("bearing", "gearbox", "pump")


def tiny_synth(synth_once) -> Path:
    """3 machines, 25 training clips each, 5 s, easy anomalies (severity 0.9-1), no factory background
    (as the other methods' easy set); generated once per worker.

    Until issue 14 this set had the old simulator's mild background (+6 dB, stationary floor). Since
    then each unit hears a -6..+6 dB factory background with impacts and babble (here bearing -4.2,
    gearbox +5.5, pump 0.0 dB), and this 6-epoch fit on 25 clips per type scored 0.53 mean AUC with it
    (bearing 0.55, gearbox 0.52, pump 0.52), 0.76 without (0.68 / 0.66 / 0.95): at this size the
    background, not the implementation, decides whether it beats chance."""
    from auscult.data.synth import generate_dataset

    return synth_once("methods_tiny_synth_5s_bgp_quiet", lambda out: generate_dataset(
        "demo", out, seed=3, machines=MACHINES, scale=0.5, duration=5.0, severity_range=(0.9, 1.0), workers=1,
        overwrite=True, probe=False, background=False))


@pytest.fixture(scope="module")
def data(synth_once):
    from auscult.data.index import DatasetIndex

    idx = DatasetIndex.scan(tiny_synth(synth_once))
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    return train, test


def recipe(**train):
    cfg = load_recipe("synthetic/ssl4asd")
    cfg["train"] = {**cfg["train"], "batch_size": 8, "log_every": 0, **train}
    cfg["backend"] = {**cfg["backend"], "n_init": 2}
    return cfg


@pytest.fixture(scope="module")
def audio():
    return AudioSource(load_recipe("synthetic/ssl4asd")["audio"], memory=True)


@pytest.fixture(scope="module")
def fitted(data, audio):
    train, _ = data
    cfg = recipe(epochs=6)
    return build_method("ssl4asd", cfg, FitContext(seed=0, quiet=True)).fit(train, [], audio), cfg


def _model(method, n_classes=4, n_samples=80000, seed=0):
    method.n_samples = n_samples
    method.classes = [f"c{i}" for i in range(n_classes)]
    torch.manual_seed(seed)
    return method._build_model(seed)


def test_feature_exchange_swaps_exactly_one_branch():
    cfg = recipe()
    cfg["augment"] = {"mixup": {"p": 0.0}, "statistics_exchange": {"p": 0.0}, "feature_exchange": {"p": 0.5}}
    m = build_method("ssl4asd", cfg, FitContext(quiet=True))
    model = _model(m).train()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(12, 80000, generator=g) * 0.1
    y = torch.arange(12) % 4
    parts = m.training_losses(model, x, y, generator=g, return_parts=True)
    emb, new, y9 = parts["emb"], parts["emb_new"], parts["y9"]
    h = model.split
    assert h == 128 and emb.shape == (12, 256)
    # the spectrum half is never touched
    torch.testing.assert_close(new[:, :h], emb[:, :h], rtol=0, atol=0)
    swapped = ~torch.isclose(new[:, h:], emb[:, h:]).all(1)
    assert 0 < int(swapped.sum()) < 12  # p = 0.5: some rows exchanged, some not
    c = 4
    for i in range(12):
        if swapped[i]:
            # the spectrogram half is exactly another row's spectrogram half
            partner = [j for j in range(12) if j != i and torch.equal(new[i, h:], emb[j, h:])]
            assert len(partner) == 1
            j = partner[0]
            # labels: feature-exchange blocks 1 (own class, 1/2) and 2 (partner's class, 1/2); no statex
            expect = torch.zeros(9 * c)
            expect[1 * 3 * c + 0 * c + int(y[i])] += 0.5
            expect[2 * 3 * c + 0 * c + int(y[j])] += 0.5
            torch.testing.assert_close(y9[i], expect)
        else:
            torch.testing.assert_close(new[i], emb[i], rtol=0, atol=0)
            expect = torch.zeros(9 * c)
            expect[int(y[i])] = 1.0
            torch.testing.assert_close(y9[i], expect)


def test_training_step_labels_compose_mixup_and_statistics_exchange():
    cfg = recipe()
    cfg["augment"] = {"mixup": {"p": 1.0}, "statistics_exchange": {"p": 1.0}, "feature_exchange": {"p": 0.0}}
    m = build_method("ssl4asd", cfg, FitContext(quiet=True))
    model = _model(m).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 80000, generator=g) * 0.1
    y = torch.arange(8) % 4
    parts = m.training_losses(model, x, y, generator=g, return_parts=True)
    c = 4
    # mixed labels: each row sums to one, at most two classes
    torch.testing.assert_close(parts["y_mix"].sum(1), torch.ones(8))
    assert ((parts["y_mix"] > 0).sum(1) <= 2).all()
    # every row statistics-exchanged (p = 1): the 3C labels sit in blocks 1 and 2, half each
    y3 = parts["y3"]
    assert torch.all(y3[:, :c] == 0)
    torch.testing.assert_close(y3[:, c:2 * c], 0.5 * parts["y_mix"])
    torch.testing.assert_close(y3[:, c:].sum(1), torch.ones(8))
    # no feature exchange: 9C labels are the 3C labels in block 0
    torch.testing.assert_close(parts["y9"][:, :3 * c], y3)
    assert torch.all(parts["y9"][:, 3 * c:] == 0)
    assert torch.isfinite(parts["loss"]) and parts["loss"].requires_grad


def test_reverse_partners_and_code_options():
    """``augment.partner: reverse`` (the SSL4ASD code): mixup, statistics exchange and feature exchange
    all pair sample i with sample B-1-i; the net and scale options reach the modules."""
    cfg = recipe()
    cfg["augment"] = {"mixup": {"p": 0.0}, "statistics_exchange": {"p": 0.0}, "feature_exchange": {"p": 1.0},
                      "partner": "reverse"}
    cfg["net"] = {"name": "dualbranch", "layout": "asdkit", "norm": "affine", "se_reduction": 16,
                  "spectrum_dense": 4, "spectrum_conv_norm": False, "spectrum_padding": "same"}
    cfg["loss"] = {**cfg["loss"], "scale_rule": "asdkit"}
    m = build_method("ssl4asd", cfg, FitContext(quiet=True))
    model = _model(m).train()
    assert model.net.spectrogram.layout == "asdkit" and model.adacos.scale_rule == "asdkit"
    assert model.adacos_ssl.scale_rule == "asdkit" and model.adacos.adaptive
    x = torch.randn(6, 80000, generator=torch.Generator().manual_seed(2)) * 0.1
    y = torch.arange(6) % 4
    parts = m.training_losses(model, x, y, generator=torch.Generator().manual_seed(0), return_parts=True)
    emb, new, h = parts["emb"], parts["emb_new"], model.split
    for i in range(6):
        torch.testing.assert_close(new[i, h:], emb[5 - i, h:], rtol=0, atol=0)
        torch.testing.assert_close(new[i, :h], emb[i, :h], rtol=0, atol=0)
    fixed = build_method("ssl4asd", {**cfg, "loss": {**cfg["loss"], "adaptive_scale": False}}, FitContext(quiet=True))
    assert not _model(fixed).adacos.adaptive
    with pytest.raises(ConfigError, match="partner"):
        build_method("ssl4asd", {**cfg, "augment": {"partner": "sideways"}})
    with pytest.raises(ConfigError, match="net setting"):
        build_method("ssl4asd", {**cfg, "net": {"name": "dualbranch", "depth": 3}})
    with pytest.raises(ConfigError, match="scale_rule"):
        build_method("ssl4asd", {**cfg, "loss": {"scale_rule": "magic"}})


def test_fit_loss_decreases_and_scores(fitted, data, audio):
    m, cfg = fitted
    train, test = data
    hist = m.history[0]
    assert len(hist) == 6 and all(np.isfinite(h["train_loss"]) for h in hist)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert len(m.classes) == len({(c.machine, c.section, c.domain, c.attribute_key) for c in train})
    s = m.score(test, audio)
    assert s.shape == (len(test),) and np.isfinite(s).all()
    assert (s >= -1e-6).all() and (s <= 2 + 1e-6).all()  # cosine distances
    emb = m.embed(test[:3], audio)
    assert emb.shape == (3, 256)


def test_state_round_trip_gives_identical_scores(fitted, data, audio):
    m, cfg = fitted
    _, test = data
    again = build_method("ssl4asd", cfg, FitContext(seed=7, quiet=True))
    again.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(again.score(test, audio), m.score(test, audio))


def test_backend_is_min_cosine_distance_to_kmeans_and_target_centres(fitted, data, audio):
    """Independent reference for one section: k-means means of source embeddings (from the fitted
    back-end) plus every target training embedding; score = min cosine distance."""
    m, _ = fitted
    train, test = data
    mach = "bearing"
    tr = [c for c in train if c.machine == mach]
    te = [c for c in test if c.machine == mach]
    e_tr, e_te = m.embed(tr, audio).astype(np.float64), m.embed(te, audio).astype(np.float64)
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    be = m.backends[0]
    state = next(st for k, st in be.groups_.items() if mach in k)
    centres = [np.asarray(a, dtype=np.float64) for a in state.values() if np.ndim(a) == 2]
    tgt = norm(e_tr[[c.domain == "target" for c in tr]])
    # one of the stored centre sets must be exactly the target training embeddings
    assert any(c.shape == tgt.shape and np.allclose(norm(c), tgt, atol=1e-5) for c in centres)
    ref = (1 - norm(e_te) @ norm(np.concatenate(centres)).T).min(1)
    np.testing.assert_allclose(m.score(te, audio), ref, atol=1e-5)


def test_detects_a_machine_sound_replaced_by_noise_on_every_seed(fitted, data, audio, tmp_path, noisy_copies):
    """What a short CPU fit of SSL4ASD detects reliably: the machine's sound replaced by noise.

    This replaces a test that asserted mean AUC > 0.6 on the easy simulated faults, a seed lottery
    (`benchmarks/seed_spread.py ssl4asd --seeds 0-7`, this set-up, one thread): 0.571 +- 0.038 over
    training seeds 0-7, pass rate 1/8 (seed 0, the one the test used, was the only pass; on an
    emulated AVX2-only CPU seed 0 gave 0.573 and failed); the lead's 13 seeds: 0.580 +- 0.035.
    With 20 + 20 test clips per domain (chance-level std 0.038 instead of 0.076) it is 0.534 +- 0.033,
    with 15 epochs 0.494 +- 0.018, with 3 sections per machine type (a harder auxiliary task, seeds
    0-2) ~0.54, with 40 + 10 training clips per type (seeds 0-3) 0.556 +- 0.023: at a CI budget
    SSL4ASD's detection of these faults is at or near chance, whatever the set-up tried
    (docs/methods/ssl4asd.md, "When it works and when it does not").

    Even normal clips with 0 dB of white noise added are not detected reliably (AUC 0.82 +- 0.09,
    seeds 0-7). Asserted here: per machine type, the AUC of the 10 normal test clips against white
    noise of each clip's power *instead of* the clip (fixture `noisy_copies(kind="replace")`), averaged
    over the 3 types. Seeds 0-7 (`--gross --gross-kind replace`): 0.963 +- 0.040, range 0.90-1.0;
    emulated AVX2-only CPU, seeds 0-3: 0.981 +- 0.018 (every seed's value moved, all > 0.95).
    Caveat: with channels-last training (`AUSCULT_FASTPATH=train_channels_last=1`, opt-in on main)
    it is 0.914 +- 0.064 (seeds 0-7, all > 0.84): still 8/8 above the bar but only 1.8 seed-stds
    above it; if that path becomes the default, re-measure and re-derive the bar
    (`seed_spread.py ssl4asd --gross --gross-kind replace`). Louder noise (10 dB above the clip,
    `--gross-kind loud`) is detected *worse* (0.65 +- 0.16 with channels-last), so it is not used.
    Chance level: std 0.076 for this size (10 vs 10 per type, 3 types). The bar 0.8 is 4.1
    seed-stds below the mean and 3.9 chance-stds above 0.5; negated scores (`--negate`) and random
    scores fail it. The easy-fault AUC is printed, not asserted.
    """
    from auscult.eval.metrics import auc

    m, _ = fitted
    _, test = data
    s = m.score(test, audio)
    easy = {mach: round(float(auc([c.label == "anomaly" for c in test if c.machine == mach],
                                  s[[i for i, c in enumerate(test) if c.machine == mach]])), 3) for mach in MACHINES}
    print("SSL4ASD easy synthetic faults, AUC per machine type (not asserted):", easy)
    noise = noisy_copies(test, tmp_path, kind="replace")
    sn = m.score(noise, audio)
    aucs = {}
    for mach in MACHINES:
        a = s[[i for i, c in enumerate(test) if c.machine == mach and c.label == "normal"]]
        b = sn[[i for i, c in enumerate(noise) if c.machine == mach]]
        assert len(a) == len(b) == 10
        aucs[mach] = float(auc([0] * len(a) + [1] * len(b), np.r_[a, b]))
    print("SSL4ASD normal vs noise instead of the machine, AUC per machine type:", aucs)
    assert np.mean(list(aucs.values())) > 0.8, aucs


def test_ensemble_averages_members(data, audio):
    train, test = data
    cfg = recipe(epochs=1, batch_size=16)
    cfg["ensemble"] = {"size": 2}
    m = build_method("ssl4asd", cfg, FitContext(seed=0, quiet=True)).fit(train[:32], [], audio)
    assert len(m.models) == 2 and len(m.history) == 2
    w0 = next(iter(m.models[0].net.parameters()))
    w1 = next(iter(m.models[1].net.parameters()))
    assert not torch.equal(w0, w1)  # independently initialised (seeds 0 and 1)
    clips = [c for c in test if c.machine in {c.machine for c in train[:32]}][:6]
    per = [m.backends[i].score(m._embed_with(m.models[i], clips, audio),
                               __import__("auscult.backends", fromlist=["BackendMeta"]).BackendMeta.from_clips(clips))
           for i in range(2)]
    np.testing.assert_allclose(m.score(clips, audio), (per[0] + per[1]) / 2, rtol=1e-12)


def test_errors_and_recipes(data):
    train, _ = data
    paper = load_recipe("dcase2023/ssl4asd")
    assert paper["train"]["epochs"] == 10 and paper["train"]["batch_size"] == 64 and paper["train"]["lr"] == 1e-3
    assert paper["loss"]["n_subclusters"] == 16 and paper["backend"]["n_clusters"] == 16
    assert paper["augment"]["mixup"] == {"alpha": 1.0, "dist": "uniform", "p": 0.5}
    assert paper["model_per"] == "all"
    with pytest.raises(ConfigError, match="ensemble.size"):
        build_method("ssl4asd", {**paper, "ensemble": {"size": 0}})
    with pytest.raises(ConfigError, match="dual-branch"):
        build_method("ssl4asd", {**paper, "net": {"name": "mobilefacenet"}})
    with pytest.raises(ConfigError, match="unknown setting"):
        build_method("ssl4asd", {**paper, "augment": {"cutmix": {}}})
    short = AudioSource({"length": "crop", "duration": 2.0})
    with pytest.raises(ConfigError, match="too short"):
        build_method("ssl4asd", recipe(epochs=1), FitContext(quiet=True)).fit(train[:4], [], short)
    with pytest.raises(DataError, match="at least 2"):
        build_method("ssl4asd", recipe(), FitContext(quiet=True)).fit(train[:1], [], short)
