"""``train.scheduler_interval: epoch`` in every neural method: the schedule spans ``epochs`` scheduler
steps (one per epoch), so a cosine schedule reaches ``eta_min`` at the last epoch and milestones count
epochs. Before the fix, ``_neural.build_schedule`` built a span of ``epochs x steps_per_epoch`` for
every method but OS-SCL, so a per-epoch cosine barely moved the learning rate."""

from __future__ import annotations

import math

import pytest
import torch

from auscult.errors import ConfigError
from auscult.methods import FitContext, build_method
from auscult.methods import _neural as nu
from auscult.pipeline.recipe import load_recipe

LR, ETA, EPOCHS = 1e-3, 1e-5, 3


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)


def _lrs(interval: str, steps_per_epoch: int, train: dict) -> list[float]:
    """lr after each epoch when the trainer steps the schedule per ``interval``."""
    tcfg, ocfg, ld = nu.split_train_section({"epochs": EPOCHS, "lr": LR, **train}, None)
    opt = _opt()
    sched = nu.build_schedule(opt, ocfg, ld, steps_per_epoch, EPOCHS, interval)
    out = []
    for _ in range(EPOCHS):
        for _ in range(steps_per_epoch if interval == "step" else 1):
            opt.step()
            sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_cosine_reaches_eta_min_at_the_last_epoch_for_both_intervals(interval):
    lrs = _lrs(interval, 7, {"schedule": "cosine", "eta_min": ETA})
    want = [ETA + (LR - ETA) * 0.5 * (1 + math.cos(math.pi * (e + 1) / EPOCHS)) for e in range(EPOCHS)]
    assert lrs == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_multistep_milestones_count_epochs_for_both_intervals(interval):
    lrs = _lrs(interval, 5, {"schedule": "multistep", "milestones": [1, 2], "gamma": 0.1})
    assert lrs == pytest.approx([LR * 0.1, LR * 0.01, LR * 0.01], rel=1e-9)


def test_unknown_interval_is_a_config_error():
    _, ocfg, ld = nu.split_train_section({"lr": LR}, None)
    with pytest.raises(ConfigError, match="scheduler_interval"):
        nu.build_schedule(_opt(), ocfg, ld, 3, 2, "batch")


#: per method: recipe + overrides for a tiny fit on the easy set (2 s clips, small nets)
TINY = {
    "clsia": ("synthetic/clsia", ["train.batch_size=8", "net.emb_dim=32", "clsia.queue_size=32",
                                  "augment.logmixupexp.bank_size=32", "audio.duration=2.0", "clsia.per_section=false"]),
    "osscl": ("synthetic/osscl", ["train.batch_size=8", "net.emb_dim=32", "audio.duration=2.0"]),
    "protoasd": ("synthetic/protoasd", ["train.batch_size=8", "net.emb_dim=32", "protoasd.finetune.epochs=1",
                                        "protoasd.finetune.n_per_class=2", "protoasd.crop_frames=32",
                                        "protoasd.crop_hop=32", "audio.duration=2.0"]),
    "ssl4asd": ("synthetic/ssl4asd", ["train.batch_size=8", "backend.n_clusters=2", "backend.n_init=1"]),
}


def _first_stage_history(method) -> list[dict]:
    h = method.history
    if isinstance(h, dict):
        h = h.get("pretrain", next(iter(h.values())))
    if h and isinstance(h[0], list):
        h = h[0]
    return [r for r in h if r.get("kind", "epoch") == "epoch"]


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_method_honours_a_per_epoch_schedule(name, easy, one_thread):
    """Cosine per epoch over 3 epochs: the lr recorded after epoch e is the closed form at (e+1)/3,
    the last one eta_min, whatever the number of batches per epoch."""
    train, _, audio = easy
    recipe, sets = TINY[name]
    cfg = load_recipe(recipe, sets + [f"train.epochs={EPOCHS}", f"train.lr={LR}", "train.schedule=cosine",
                                      f"train.eta_min={ETA}", "train.scheduler_interval=epoch",
                                      "train.warmup_steps=0", "train.log_every=0"])
    if name == "ssl4asd":  # its spectrum branch needs >= 5 s: the 2 s clips tiled to the recipe's length
        from auscult.audio import AudioConfig
        from auscult.data.source import AudioSource

        audio = AudioSource(AudioConfig(sample_rate=16000, length="tile", duration=5.0), memory=True)
    m = build_method(name, cfg, FitContext(seed=0, quiet=True))
    m.fit(train[::2], [], audio)
    hist = _first_stage_history(m)
    assert len(hist) == EPOCHS
    want = [ETA + (LR - ETA) * 0.5 * (1 + math.cos(math.pi * (e + 1) / EPOCHS)) for e in range(EPOCHS)]
    assert [r["lr"] for r in hist] == pytest.approx(want, rel=1e-6)
