"""OS-SCL: short runs on a tiny synthetic set (well-formed outputs, learning, state round trip,
beats chance on easy anomalies), the cross-entropy score against its definition, the TFSTgram
variant, the embedding back-end option and the recipes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from auscult.data.source import AudioSource
from auscult.errors import CheckpointError, ConfigError, DataError
from auscult.methods import FitContext, build_method
from auscult.recipes import load_recipe

MACHINES = ("pump", "gearbox")
SECTIONS = ("00", "01", "02")


def tiny_synth(synth_once) -> Path:
    """DCASE 2022 layout: 2 machine types x 3 sections (machine units), 12 source + 2 target training
    clips and 4 + 4 test clips per domain per section, 5 s, easy anomalies (severity 0.9-1).

    OS-SCL's classes are machine type x section, so telling apart units of the same type is its
    proxy task (DCASE 2020: machine IDs), as the method is designed; generated once per worker."""
    from auscult.data.synth import Preset, generate_dataset

    preset = Preset("tiny-units", "dcase2022", MACHINES, SECTIONS, 12, 2, 4, 4, 5.0)
    return synth_once("osscl_tiny_synth_units", lambda out: generate_dataset(
        preset, out, seed=3, severity_range=(0.9, 1.0), workers=1, overwrite=True, probe=False))


@pytest.fixture(scope="module")
def data(synth_once):
    from auscult.data.index import DatasetIndex

    idx = DatasetIndex.scan(tiny_synth(synth_once))
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    val = train[::14]
    fit = [c for c in train if c not in val]
    return fit, val, test


def recipe(**train):
    """The synthetic recipe made smaller still: 2 s crops, 32 mels."""
    cfg = load_recipe("synthetic/osscl")
    cfg["audio"] = {**cfg["audio"], "duration": 2.0}
    cfg["features"] = {**cfg["features"], "n_mels": 32}
    # patience: null -- the module's budgets are fixed epoch counts (the recipe's stop rule would end the
    # 30-epoch fit after a few epochs); model selection on the held-out normals still applies
    cfg["train"] = {**cfg["train"], "batch_size": 16, "log_every": 0, "patience": None, **train}
    return cfg


def audio_for(cfg):
    return AudioSource(cfg["audio"], memory=True)


def aucs_per_section(test, scores):
    from auscult.eval.metrics import auc

    out = {}
    for key in sorted({(c.machine, c.section) for c in test}):
        idx = [i for i, c in enumerate(test) if (c.machine, c.section) == key]
        out[key] = auc([test[i].label == "anomaly" for i in idx], scores[idx])
    return out


#: epochs of the module's fitted model (~150 steps of 16 clips): at 4 epochs the classifier does not
#: yet tell pump from gearbox on test clips (machine-swap AUC 0.63-0.66), at 30 it does (0.83-0.93)
EPOCHS = 30


@pytest.fixture(scope="module")
def fitted(data):
    fit, val, _ = data
    cfg = recipe(epochs=EPOCHS)
    audio = audio_for(cfg)
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True)).fit(fit, val, audio)
    return m, cfg, audio


def test_fit_history_and_classes(fitted, data):
    m, cfg, _ = fitted
    fit, val, _ = data
    assert m.classes == sorted({f"{c.machine}/{c.section}" for c in fit})
    assert len(m.history) == EPOCHS
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in m.history)
    # model selection on the held-out normals: the kept epoch has the lowest held-out loss
    best = min(range(EPOCHS), key=lambda e: m.history[e]["val_loss"])
    assert m.selected == f"best epoch {best} + BN recalibrated"


def test_loss_decreases(fitted, data):
    """The classifier learns: on a fixed batch without mixup (lam = 1, batch statistics) the
    Noisy-ArcMix term is lower for the trained network than for the network as fit() initialised it.

    The noisy SupCon term (tau = 0.02, labels y_a of mixed clips) is not asserted: within the ~20
    steps of this run it does not decrease (it needs the paper's long schedule), see the report in
    docs/methods/osscl.md."""
    m, cfg, audio = fitted
    fit, _, _ = data
    clips = fit[::4][:16]  # every section
    x = audio.batch(clips)
    y = torch.as_tensor([m.classes.index(f"{c.machine}/{c.section}") for c in clips])
    no_mix = copy.deepcopy(m)
    no_mix.opts["augment"]["mixup"]["p"] = 0.0

    def losses_of(state):
        model = copy.deepcopy(m.model)
        model.load_state_dict(state)
        model.train()
        with torch.no_grad():
            out = no_mix.training_loss(model, x, y, generator=torch.Generator().manual_seed(0))
        assert float(out["lam"]) == 1.0 and torch.isfinite(out["loss"])
        return float(out["arcmix"]), float(out["supcon"])

    init = _untrained_state(cfg, m)
    init["mel_mean"], init["mel_std"] = m.model.mel_mean.clone(), m.model.mel_std.clone()
    (arc0, sup0), (arc1, sup1) = losses_of(init), losses_of(m.model.state_dict())
    assert arc1 < arc0, (arc0, arc1, sup0, sup1)


def _untrained_state(cfg, m):
    """The network as fit() initialises it (seed 0), before any step."""
    other = build_method("osscl", cfg, FitContext(seed=0, quiet=True))
    other.n_samples, other.classes = m.n_samples, list(m.classes)
    torch.manual_seed(0)
    return other._build_model().state_dict()


def test_scores_well_formed_and_state_round_trip(fitted, data):
    m, cfg, audio = fitted
    _, _, test = data
    s = m.score(test, audio)
    assert s.shape == (len(test),) and s.dtype == np.float64 and np.isfinite(s).all()
    assert (s >= 0).all()  # a cross-entropy
    again = build_method("osscl", cfg, FitContext(seed=1, quiet=True))
    again.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(again.score(test, audio), s)
    assert m.score([], audio).shape == (0,)


def test_score_is_cross_entropy_at_own_class(fitted, data):
    """Independent reference: -log softmax(s * cos(e, W))[own class] from the embeddings in numpy."""
    m, _, audio = fitted
    _, _, test = data
    clips = test[:7]
    emb = m.embed(clips, audio).astype(np.float64)
    w = m.model.arcmix.weight.detach().double().numpy()
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    logits = m.model.arcmix.scale * cos
    own = np.array([m.classes.index(f"{c.machine}/{c.section}") for c in clips])
    ref = -(logits[np.arange(len(clips)), own] - np.log(np.exp(logits).sum(1)))
    np.testing.assert_allclose(m.score(clips, audio), ref, rtol=1e-4, atol=1e-4)


def test_score_flags_a_clip_of_another_class(fitted, data):
    """The score reads the class evidence the classifier learned: test normals scored as the other
    machine type's class of the same section (a clip that is plainly not that class) get higher
    cross-entropies than the same clips scored at their own class."""
    import dataclasses

    from auscult.eval.metrics import auc

    m, _, audio = fitted
    _, _, test = data
    normals = [c for c in test if c.label == "normal"]
    other = {MACHINES[0]: MACHINES[1], MACHINES[1]: MACHINES[0]}
    own = m.score(normals, audio)
    swapped = m.score([dataclasses.replace(c, machine=other[c.machine]) for c in normals], audio)
    assert auc([0] * len(own) + [1] * len(swapped), np.r_[own, swapped]) > 0.75
    assert np.median(swapped) > np.median(own) + 2.0


@pytest.mark.xfail(strict=False, reason=(
    "OS-SCL's cross-entropy score does not reliably beat chance (mean per-section AUC > 0.6) on this set at a"
    " budget CI can train. Simulator of issue 14 after the writer's one-product-line fix, training seeds 0 1 "
    "2 (this test: seed 0, 30 epochs): 30 epochs 0.586 / 0.557 / 0.497; the paper's 300 epochs (~2 min of one"
    " CPU) 0.648 / 0.583 / 0.576 -- at the bar (chance's ~5 % level for 6 sections of 8 + 8 clips), not above"
    " it. The synthetic autoencoder on the same clips: 0.682 / 0.654 / 0.698, so issue 14's fact 1 does not "
    "hold at this size either. Reproduce: benchmarks/diag_osscl.py budget --epochs N --ae; "
    "docs/methods/osscl.md. Kept as a visible expected failure, not made strict."))
def test_beats_chance_on_easy_anomalies(fitted, data):
    m, _, audio = fitted
    _, _, test = data
    aucs = aucs_per_section(test, m.score(test, audio))
    assert np.mean(list(aucs.values())) > 0.6, aucs


def test_head_output_is_unit_norm(fitted):
    m, _, _ = fitted
    m.model.eval()
    with torch.no_grad():
        z = m.model.head(torch.randn(5, 128))
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_batchnorm_recalibration_is_the_mean_over_clean_training_clips(fitted, data):
    from auscult.methods._neural import recalibrate_batchnorm

    m, _, audio = fitted
    fit, _, _ = data
    # reference: the embedding batch norm's input in a train-mode pass over the same batches
    ref = copy.deepcopy(m.model).train()
    feats = []
    hook = ref.net.project[1].register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    with torch.no_grad():
        for i in (0, 10):
            ref(audio.batch(fit[i:i + 10]))
    hook.remove()
    expect = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    model = copy.deepcopy(m.model).eval()
    bn = model.net.project[1]  # the embedding's batch norm
    n = recalibrate_batchnorm(model, fit[:20], audio, batch_size=10, device=torch.device("cpu"))
    assert n > 10
    torch.testing.assert_close(bn.running_mean, expect, rtol=1e-4, atol=1e-4)
    assert model.training is False and bn.momentum == m.model.net.project[1].momentum


def test_unknown_class_and_wrong_length_raise(fitted, data, tmp_path):
    import dataclasses

    m, cfg, audio = fitted
    _, _, test = data
    with pytest.raises(DataError, match="not trained on"):
        m.score([dataclasses.replace(test[0], machine="fan")], audio)
    longer = AudioSource({**cfg["audio"], "duration": 3.0})
    with pytest.raises(DataError, match="built for"):
        m.score(test[:2], longer)


def test_backend_option_and_missing_embeddings(fitted, data):
    m, cfg, audio = fitted
    fit, val, test = data
    cfg_b = {**cfg, "score": {"kind": "backend"}, "backend": {"name": "knn", "k": 1, "metric": "cosine"}}
    with pytest.raises(CheckpointError, match="training embeddings"):
        build_method("osscl", cfg_b, FitContext(quiet=True)).load_state_dict(m.state_dict())
    cfg_b["train"] = {**cfg_b["train"], "epochs": 1}
    mb = build_method("osscl", cfg_b, FitContext(seed=0, quiet=True)).fit(fit, [], audio)
    s = mb.score(test, audio)
    assert s.shape == (len(test),) and np.isfinite(s).all() and (s >= -1e-6).all()
    again = build_method("osscl", cfg_b, FitContext(quiet=True))
    again.load_state_dict(mb.state_dict())
    np.testing.assert_array_equal(again.score(test, audio), s)
    assert mb.selected == "final EMA"  # no held-out clips: the final EMA weights


def test_tfstgram_variant_runs(data):
    fit, val, test = data
    cfg = load_recipe("dcase2020/osscl_tfstgram")
    cfg["audio"] = {**cfg["audio"], "length": "crop", "duration": 2.0}
    cfg["features"] = {**cfg["features"], "n_mels": 32, "stft_precision": "float32"}
    cfg["net"] = {**cfg["net"], "activation": "relu"}
    cfg["train"] = {**cfg["train"], "epochs": 1, "batch_size": 16, "lr": 1e-3, "log_every": 0,
                    "ema": {"decay": 0.9, "warmup": True}}
    audio = audio_for(cfg)
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True)).fit(fit[::3], [], audio)
    assert m.model.two_inputs and m.model.net.channels == ("logmel", "tgram", "tfgram")
    s = m.score(test[:6], audio)
    assert s.shape == (6,) and np.isfinite(s).all()


def test_recipes_load_and_config_errors():
    for name in ("dcase2020/osscl", "dcase2020/osscl_tfstgram", "synthetic/osscl"):
        cfg = load_recipe(name)
        assert cfg["method"] == "osscl" and cfg["model_per"] == "all"
    paper = load_recipe("dcase2020/osscl")
    assert paper["train"]["epochs"] == 300 and paper["train"]["lr"] == 1e-4
    assert paper["loss"]["supcon"]["temperature"] == 0.02 and paper["loss"]["arcmix"]["margin"] == 0.7
    assert paper["augment"]["mixup"]["alpha"] == 0.5 and paper["data"]["holdout"] == 0.05
    assert load_recipe("dcase2020/osscl_tfstgram")["loss"]["arcmix"]["margin"] == 0.4
    base = load_recipe("synthetic/osscl")
    with pytest.raises(ConfigError, match="unknown setting"):
        build_method("osscl", {**base, "loss": {"supcon": {"tau": 0.1}}})
    with pytest.raises(ConfigError, match="score.kind"):
        build_method("osscl", {**base, "score": {"kind": "magic"}})
    with pytest.raises(ConfigError, match="train.ema"):
        build_method("osscl", {**base, "train": {**base["train"], "ema": {"decay": 0.9, "beta": 1}}})
    with pytest.raises(ConfigError, match="before"):
        build_method("osscl", base).score([], None)


# ---- the documented paper-text variant ----------------------------------------------------------
def _documented_paper_text_overrides() -> list[str]:
    """The ``--set`` items of the paper-text command in docs/methods/osscl.md ("Paper vs code")."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "methods" / "osscl.md").read_text()
    block = doc.split("## Paper vs code", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return re.findall(r"--set\s+(\S+)", block)


def _model_of(recipe_overrides: list[str]):
    cfg = load_recipe("dcase2020/osscl", recipe_overrides)
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True))
    m.n_samples, m.classes = 160000, ["fan/00", "fan/02"]
    return m, m._build_model()


def test_paper_text_variant_is_the_documented_set_line():
    """The paper recipe computes what the authors' code computes; the docs' one ``--set`` line gives
    the paper text's choices (docs/methods/osscl.md, rows 1, 4, 5 and 6 of the table)."""
    overrides = _documented_paper_text_overrides()
    assert len(overrides) == 7, overrides
    code, code_model = _model_of([])
    paper, paper_model = _model_of(overrides)
    # the code (the recipe as shipped)
    sc = code.opts["loss"]["supcon"]
    assert (sc["temperature"], sc["base_temperature"], sc["anchors"], sc["reduction"]) == (0.02, 0.07, "all", "mean")
    assert code_model.head.layout == "act_bn" and code_model.arcmix_input == "head"
    assert code.opts["score"]["margin"] is True and code_model.frontend.config.n_fft == 2048
    # the paper text: Eq. (1) summed over the anchors with a positive, no tau / tau_base factor
    sp = paper.opts["loss"]["supcon"]
    assert sp["base_temperature"] == sp["temperature"] == 0.02
    assert (sp["anchors"], sp["reduction"]) == ("positive", "sum")
    assert paper_model.head.layout == "bn_act" and paper_model.arcmix_input == "embedding"
    assert paper.opts["score"]["margin"] is False and paper_model.frontend.config.n_fft == 1024
    # the recipe's own note gives the same line
    notes = " ".join(load_recipe("dcase2020/osscl")["notes"].split())
    for item in overrides:
        assert f"--set {item}" in notes, item
