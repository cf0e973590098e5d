"""CLSIA: MoCo mechanics (key encoder, momentum rule, queue), the loss definition, and a short
fit on an easy synthetic set (well-formed outputs, loss going down, state round trip, better than
chance)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auscult.errors import CheckpointError, ConfigError, DataError
from auscult.methods import METHODS, FitContext, build_method
from auscult.methods.clsia import CLSIAViews, LabelledKeyQueue, MoCo, contrastive_loss, moco_step
from auscult.losses.heads import ProjectionMLP
from auscult.nets import NETS

SR, DUR = 16000, 2.0  # the easy set's geometry (tests/methods/conftest.py)


def small_config(**clsia):
    return {
        "method": "clsia",
        "features": {"n_mels": 64},
        "net": {"name": "mobilefacenet", "activation": "relu"},
        "augment": {"rrc": {"freq_scale": [0.9, 1.1], "time_scale": [0.8, 1.2], "canvas_scale": [1.0, 1.2]}},
        "train": {"epochs": 6, "batch_size": 8, "optimizer": "adam", "lr": 1e-3},
        "clsia": {"queue_size": 64, "momentum": 0.9, **clsia},
    }


def tiny_moco(m=0.99):
    torch.manual_seed(0)
    enc = NETS.build("mobilefacenet", input_shape=(1, 32, 32), emb_dim=16, activation="relu")
    return MoCo(enc, ProjectionMLP(16, 32, 8), momentum=m)


# ---- mechanics ---------------------------------------------------------------------------------
def test_key_encoder_gets_no_gradient_and_follows_the_momentum_rule(one_thread):
    from auscult.features import FeatureConfig, LogMel

    m = 0.9
    model = tiny_moco(m)
    fe = LogMel(FeatureConfig(n_mels=32, n_fft=256, hop_length=64))
    n = 64 * 31  # 32 frames
    views = CLSIAViews(alpha=0.4, bank_size=16)
    views.prenorm.set_stats(-40.0, 20.0)
    queue = LabelledKeyQueue(8, size=32, temperature=0.1, seed=0)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        # perturb the key encoder so query and key differ before the update
        if step == 0:
            with torch.no_grad():
                for p in model.key_encoder.parameters():
                    p.add_(0.01 * torch.randn(p.shape, generator=g))
        kq = {n_: p.detach().clone() for n_, p in model.encoder.named_parameters()}
        kk = {n_: p.detach().clone() for n_, p in model.key_encoder.named_parameters()}
        hq = {n_: p.detach().clone() for n_, p in model.head.named_parameters()}
        hk = {n_: p.detach().clone() for n_, p in model.key_head.named_parameters()}
        x = torch.randn(4, n, generator=g)
        xn = torch.randn(4, n, generator=g)
        batch = (x, xn, torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long), torch.arange(4))
        ptr0 = queue.ptr
        opt.zero_grad()
        loss = moco_step(model, views, queue, fe, batch)
        loss.backward()
        # no gradient ever reaches the key encoder
        for p in list(model.key_encoder.parameters()) + list(model.key_head.parameters()):
            assert not p.requires_grad and p.grad is None
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
        # theta_k <- m theta_k + (1 - m) theta_q, with theta_q before this step's optimiser update
        for name, p in model.key_encoder.named_parameters():
            torch.testing.assert_close(p.detach(), m * kk[name] + (1 - m) * kq[name], rtol=1e-6, atol=1e-7)
        for name, p in model.key_head.named_parameters():
            torch.testing.assert_close(p.detach(), m * hk[name] + (1 - m) * hq[name], rtol=1e-6, atol=1e-7)
        # the batch's 8 keys (4 anchors label 0, 4 negatives label 1) are now the newest queue entries
        idx = (ptr0 + torch.arange(8)) % len(queue)
        assert queue.labels[idx].tolist() == [0] * 4 + [1] * 4
        norms = queue.keys[idx].norm(dim=1)
        torch.testing.assert_close(norms, torch.ones(8))
        opt.step()
    # buffers (BN statistics) are copied by the update (the key forward then runs in train mode)
    model.momentum_update()
    for (bn, bk), (_, bq) in zip(model.key_encoder.named_buffers(), model.encoder.named_buffers()):
        assert torch.equal(bk, bq), bn
    # the optimiser never touched the key encoder's parameters (it does not hold them)
    held = {id(p) for g_ in opt.param_groups for p in g_["params"]}
    assert not any(id(p) in held for p in model.key_encoder.parameters())


def test_queue_holds_exactly_the_last_keys_in_fifo_order():
    q = LabelledKeyQueue(emb_dim=4, size=8, seed=0)
    assert q.labels.tolist() == [-1] * 8  # random initial keys are everyone's negatives
    g = torch.Generator().manual_seed(0)
    pushed, labels = [], []
    for b, n in enumerate([3, 3, 3, 5]):
        k = torch.randn(n, 4, generator=g)
        y = torch.arange(n) + 10 * b
        q.enqueue(k, y)
        pushed.append(F.normalize(k, dim=1))
        labels.append(y)
    allk, ally = torch.cat(pushed), torch.cat(labels)
    oldest_first = torch.roll(q.keys, -q.ptr, dims=0)
    torch.testing.assert_close(oldest_first, allk[-8:])
    assert torch.roll(q.labels, -q.ptr).tolist() == ally[-8:].tolist()
    # a batch larger than the queue keeps only its last keys
    big = torch.randn(11, 4, generator=g)
    q.enqueue(big, torch.arange(11))
    torch.testing.assert_close(torch.roll(q.keys, -q.ptr, dims=0), F.normalize(big[-8:], dim=1))
    with pytest.raises(ConfigError):
        q.enqueue(torch.randn(2, 4), torch.arange(3))


def test_contrastive_loss_matches_a_loop_over_its_definition():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(5, 6, generator=g)
    k = torch.randn(7, 6, generator=g)
    yq = torch.tensor([0, 0, 1, 2, 1])
    yk = torch.tensor([0, 0, 1, 2, 1, 3, 0])
    queue = LabelledKeyQueue(6, size=4, temperature=0.2, seed=1)
    queue.enqueue(torch.randn(4, 6, generator=g), torch.tensor([1, 5, 0, 4]))
    own = torch.arange(5)
    got = contrastive_loss(q, yq, k, yk, queue, own=own)
    qn, cols = F.normalize(q, dim=1), torch.cat([F.normalize(k, dim=1), queue.keys])
    labs = torch.cat([yk, queue.labels]).tolist()
    total = 0.0
    for i in range(5):
        s = [float(qn[i] @ cols[j]) / 0.2 for j in range(len(labs))]
        pos = [j for j in range(len(labs)) if labs[j] == int(yq[i]) or j == i]
        neg = [j for j in range(len(labs)) if j not in pos]
        terms = [-math.log(math.exp(s[p]) / (math.exp(s[p]) + sum(math.exp(s[n]) for n in neg))) for p in pos]
        total += sum(terms) / len(terms)
    assert float(got) == pytest.approx(total / 5, rel=1e-5)
    # one positive, rest negatives: plain MoCo InfoNCE (cross-entropy with the positive first)
    queue2 = LabelledKeyQueue(6, size=4, temperature=0.2, seed=1)
    one = contrastive_loss(q[:1], torch.tensor([9]), k[:1], torch.tensor([9]), queue2, own=torch.tensor([0]))
    logits = torch.cat([F.normalize(q[:1], dim=1) @ F.normalize(k[:1], dim=1).T,
                        F.normalize(q[:1], dim=1) @ queue2.keys.T], 1) / 0.2
    assert float(one) == pytest.approx(float(F.cross_entropy(logits, torch.tensor([0]))), rel=1e-5)


def test_views_mix_with_the_bank_and_leave_the_input_alone():
    views = CLSIAViews(alpha=0.4, bank_size=4)
    x = torch.randn(3, 16, 20)
    v1, v2 = views.views(x.clone(), 2)
    assert v1.shape == v2.shape == x.shape and not torch.allclose(v1, v2)
    for v in (v1, v2):  # post-normalised per batch
        assert abs(float(v.mean())) < 1e-4 and abs(float(v.std(unbiased=False)) - 1) < 1e-3
    assert len(views.bank) == 3 and torch.equal(views.bank.items(), x)  # the bank stores un-mixed inputs


def test_recipe_errors_are_typed():
    with pytest.raises(ConfigError, match="clsia"):
        build_method("clsia", {**small_config(), "clsia": {"queue": 3}})
    with pytest.raises(ConfigError, match="mode"):
        build_method("clsia", {**small_config(), "clsia": {"mode": "simclr"}})
    with pytest.raises(ConfigError, match="train"):
        build_method("clsia", {**small_config(), "train": {"epochz": 1}})
    assert "clsia" in METHODS.names()


def test_pair_labels_section_instance_and_fallback():
    from pathlib import Path

    from auscult.data.clip import Clip

    def clip(m, s, i):
        return Clip(path=Path(f"/x/{m}_{s}_{i}.wav"), machine=m, section=s, domain="source", split="train")

    method = build_method("clsia", small_config())
    a = [clip("fan", "00", i) for i in range(3)] + [clip("fan", "01", i) for i in range(2)]
    ya, yp, kind = method._labels(a, [])  # one shared model: positives are same-section clips
    assert kind == "section" and ya == [0, 0, 0, 1, 1] and yp == []
    pool = [clip("fan", "01", 5), clip("fan", "02", 0)]
    ya, yp, kind = method._labels(a[:3], pool)  # per-section model: the others are negatives
    assert kind == "section" and ya == [0, 0, 0] and yp == [1, 2]
    ya, yp, kind = method._labels(a[:3], [])  # nothing to contrast with: instance discrimination
    assert kind == "instance" and ya == [0, 1, 2]
    inst = build_method("clsia", small_config(positives="instance"))
    ya, yp, kind = inst._labels(a[:3], pool)
    assert kind == "instance" and ya == [0, 1, 2] and yp == [3, 4]


# ---- a short fit -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(easy, one_thread):
    train, test, audio = easy
    method = build_method("clsia", small_config(), FitContext(seed=0, quiet=True))
    method.fit(train, [], audio)
    return method, method.score(test, audio)


def test_fit_is_well_formed_and_round_trips(fitted, easy):
    method, scores = fitted
    train, test, audio = easy
    assert sorted(method.models) == ["pump/00", "pump/01"]  # one model per section (machine ID)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    emb = method.embed(test[:3], audio)
    assert emb.shape[0] == 3 and np.isfinite(emb).all()
    fresh = build_method("clsia", small_config(), FitContext(seed=0, quiet=True))
    fresh.load_state_dict(copy.deepcopy(method.state_dict()))
    np.testing.assert_array_equal(fresh.score(test, audio), scores)
    with pytest.raises(DataError, match="section"):
        other = [c.__class__(**{**c.__dict__, "section": "07"}) for c in test[:1]]
        method.score(other, audio)
    # training clips are scored leave-one-out: distance to the nearest *other* training clip of
    # their section (not 0), so thresholds fitted on them are meaningful. The kNN back-end's score is
    # the minimum over its source and target reference sets, so the nearest other clip may be of
    # either domain (on the pump set the nearest clip of a source clip is sometimes a target clip;
    # the fan set this test ran on before issue 14 never had one nearer than its own domain's)
    tr = [c for c in train if c.section == "00"]
    got = method.score(tr[:4], audio)
    emb = method.embed(tr, audio)
    for i in range(4):
        same = [j for j, c in enumerate(tr) if j != i]
        assert got[i] == pytest.approx(min(float(np.linalg.norm(emb[i] - emb[j])) for j in same), rel=1e-5)
        assert got[i] > 0


def test_loss_goes_down(fitted):
    method, _ = fitted
    for key, hist in method.history.items():
        losses = [h["train_loss"] for h in hist]
        assert all(np.isfinite(losses))
        # the 64-key queue is refilled every ~1.3 epochs (48 keys per epoch), so later epochs are
        # comparable; the first epoch starts against the random initial queue and is skipped
        assert np.mean(losses[-2:]) < np.mean(losses[1:3]), (key, losses)


def test_copies_of_training_clips_score_below_every_test_clip(fitted, easy, tmp_path):
    """What a short CPU fit of CLSIA does reliably: its score ranks a known-normal sound first.

    This replaces a test that asserted mean AUC > 0.6 on the easy fan faults. That was a seed
    lottery: over training seeds 0-7 (this set-up, one thread, `benchmarks/seed_spread.py clsia`)
    the mean AUC was 0.611 +- 0.106 (pass rate 4/8, range 0.49-0.76); with 25 + 25 test clips per
    domain, which removes most of the test-set noise, 0.600 +- 0.051 (3/8), and 15 epochs instead of
    6 gave 0.569 +- 0.049. The chance-level std of that statistic is 0.085 (0.041 with 25 + 25), so
    no affordable set-up separates "learns the faults" from chance by a margin that survives a seed
    or a float-rounding change (docs/methods/clsia.md, "When it works and when it does not"). Nor
    does it detect gross anomalies at this budget: normal clips plus 0 dB white noise give AUC
    0.49 +- 0.10, white noise instead of the clip 0.39 +- 0.10 (`seed_spread.py clsia --gross
    [--gross-kind replace]`, seeds 0-7), so there is no reliable detection figure to assert.

    What holds for every seed, by construction of the pipeline: a clip whose embedding equals a
    training embedding of its section is at kNN distance 0, so byte copies of training clips (new
    paths, so not scored leave-one-out) must score ~0 and below every test clip. A sign flip, random
    scores, a stale back-end (embeddings of another epoch) or a train/test embedding mismatch fail it.
    """
    import shutil

    method, scores = fitted
    train, test, audio = easy
    copies = []
    for c in [c for c in train if c.section == "00"][:3] + [c for c in train if c.section == "01"][:3]:
        path = tmp_path / f"copy_{c.section}_{c.path.name}"
        shutil.copyfile(c.path, path)
        copies.append(c.__class__(**{**c.__dict__, "path": path, "split": "test", "label": "normal"}))
    got = method.score(copies, audio)
    print("CLSIA copies of training clips:", np.round(got, 6), "lowest test score:", round(float(scores.min()), 4))
    assert np.all(got <= 1e-3 * np.median(scores)), got
    assert got.max() < scores.min()


# ---- pre-training on a folder, then fine-tuning from it -----------------------------------------
def test_pretrain_folder_then_finetune_from_the_weights(easy, tmp_path, one_thread):
    from typer.testing import CliRunner

    from auscult.cli import app
    from auscult.errors import CheckpointError
    from auscult.methods.clsia.pretrain import load_pretrained

    train, test, audio = easy
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for c in train[:8]:  # any audio will do: no labels, no names needed
        (folder / f"{c.path.stem}.wav").symlink_to(c.path)
    out = tmp_path / "pre" / "mfn.pt"
    res = CliRunner().invoke(app, ["pretrain", str(folder), "--out", str(out), "--net", "mobilefacenet",
                                   "--activation", "relu", "--epochs", "2", "--batch-size", "4", "--threads", "1",
                                   "--duration", str(DUR), "--n-mels", "64", "--queue-size", "24",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    state = load_pretrained(out)
    assert state["net"] == "mobilefacenet" and state["files"] == 8 and np.isfinite(state["final_loss"])
    assert (tmp_path / "pre" / "mfn_run" / "checkpoints" / "last.pt").exists()

    # a vanishing learning rate: the fine-tuned encoder must still hold the pre-trained weights
    cfg = {**small_config(mode="finetune", pretrained=str(out)), "train": {"epochs": 1, "batch_size": 8, "lr": 1e-12}}
    ft = build_method("clsia", cfg, FitContext(seed=0, quiet=True))
    sec0 = [c for c in train if c.section == "00"]
    ft.fit(sec0, [], audio)
    assert sorted(ft.models) == ["*"] and len(ft.classes) == len({c.attribute_key for c in sec0})
    weights = dict(ft.models["*"]["encoder"].named_parameters())
    for name, w in state["encoder"].items():
        if name in weights:
            torch.testing.assert_close(weights[name].detach(), w, atol=1e-6, rtol=0)
    scores = ft.score([c for c in test if c.section == "00"], audio)
    assert np.isfinite(scores).all()
    # a mismatched architecture is refused with a message naming the file
    bad = build_method("clsia", {**cfg, "net": {"name": "mobilenetv2_050"}}, FitContext(seed=0, quiet=True))
    with pytest.raises(CheckpointError, match="mfn.pt"):
        bad.fit(sec0, [], audio)


def test_interrupted_fit_resumes_to_identical_scores(easy, one_thread, interrupted_fit):
    """Kill a fit mid-epoch (after a step checkpoint) and resume it: queue, bank, pre-norm, key
    encoder and RNG come back, so the scores equal those of an uninterrupted fit."""
    import auscult.methods.clsia.method as mod

    train, test, audio = easy
    sub = [c for c in train if c.section == "00"][:8] + [c for c in train if c.section == "01"][:4]
    cfg = {**small_config(), "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "checkpoint_every_steps": 1}}
    ref, resumed = interrupted_fit("clsia", cfg, sub, audio, mod, "moco_step", kill_at=4)
    np.testing.assert_array_equal(resumed.score(test[:8], audio), ref.score(test[:8], audio))


# ---- net.readout (tests/nets/test_mfn_readout.py has the net itself) ---------------------------
def _clsia_config(readout):
    return {
        "method": "clsia",
        "features": {"n_mels": 32, "n_fft": 512, "hop_length": 256},
        "net": {"name": "mobilefacenet", "activation": "relu", "readout": readout,
                "setting": [[2, 32, 1, 2]], "width": 64},
        "augment": {"logmixupexp": {"alpha": 0.4, "bank_size": 16}},
        "train": {"epochs": 1, "batch_size": 4, "optimizer": "adam", "lr": 1e-3},
        "clsia": {"queue_size": 8, "momentum": 0.9},
    }


def test_pooled_readout_fits_and_its_state_round_trips_fits_and_its_state_round_trips(easy, one_thread):
    train, test, audio = easy
    train = [c for c in train if c.section == "00"][:8]
    test = [c for c in test if c.section == "00"][:6]
    m = build_method("clsia", _clsia_config("mean"), FitContext(seed=0, quiet=True)).fit(train, [], audio)
    enc = m.models[m.section_key(train[0])]["encoder"]
    assert enc.readout == "mean" and not hasattr(enc, "gdconv")
    scores = m.score(test, audio)
    assert np.isfinite(scores).all() and scores.shape == (len(test),)
    state = copy.deepcopy(m.state_dict())
    fresh = build_method("clsia", _clsia_config("mean"), FitContext(seed=0, quiet=True))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.score(test, audio), scores)
    # a state trained with one read-out does not load under the other: a typed error, not silence
    other = build_method("clsia", _clsia_config("gdc"), FitContext(seed=0, quiet=True))
    with pytest.raises(CheckpointError, match="gdconv"):
        other.load_state_dict(copy.deepcopy(state))
