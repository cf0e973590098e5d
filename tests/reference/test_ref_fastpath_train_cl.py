"""The OS-SCL training step in the opt-in channels-last training layout
(``AUSCULT_FASTPATH=train_channels_last=1``), against the authors' numbers.

Held to the README bounds of ``test_training_step`` except the three arrays after the feature
perturbation head's 4-sample train-mode batch norms (``head_out``, ``feature``, ``logits``), where
the bound is also at least the *measured noise floor*: the largest change of that array, over 20
random perturbations of the embedding as large as the reference's own float32 embedding error
(3.9e-5), computed here in float64. That head amplifies float32 rounding ~30x (a perturbation of
that size moves the logits by 1.1e-3 median, 4.3e-3 at most, against a 1.58e-3 bound). Measured:
this layout's logits miss the README bound (3.4e-3 vs 1.6e-3) while its embedding is as close to the
exact value as the NCHW path's (3.4e-5 vs 3.3e-5 at one thread) -- one reason the layout is opt-in
(see :mod:`auscult.engine.fastpath`).
"""

from __future__ import annotations

import numpy as np
import pytest

from auscult.engine import fastpath
from reftestlib import assert_close, osscl_to_auscult
from test_ref_osscl_model import SHALLOW, build, f32_bound, inputs, train_step  # noqa: F401

pytestmark = pytest.mark.xdist_group("reference")


@pytest.fixture(scope="module")
def prepare():
    def channels_last_training(module, kind=""):
        with fastpath.overridden(train_channels_last=True):
            return fastpath.prepare_fast(module, kind)

    return channels_last_training


HEAD_SIDE = ("head_out", "feature", "logits")


def _noise_floor(load, n: int = 20) -> dict[str, float]:
    """Largest change of each head-side array (float64, train mode, the fixture's labels) over ``n``
    random perturbations of the exact embedding as large (max-abs) as the reference's own float32
    embedding error."""
    import torch

    io32, io64 = load("osscl/train_step_io.npz"), load("osscl/train_step_io_float64.npz")
    exact = torch.from_numpy(np.asarray(io64["mfn_feature"], np.float64))
    size = float(np.max(np.abs(np.asarray(io32["mfn_feature"], np.float64) - exact.numpy())))
    _, model = build(load, torch.float64, torch.device("cpu"))
    model.train()
    y_a = io32.tensor("y_a")

    def head(e):
        saved = {k: v.clone() for k, v in model.head.state_dict().items()}
        head_out = model.head.project(e)
        model.head.load_state_dict(saved)  # train-mode BN updated its buffers: undo
        z = torch.nn.functional.normalize(head_out, dim=-1)
        return {"head_out": head_out, "feature": z, "logits": model.arcmix.logits(model.classifier_input(e, z), y_a)}

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base = head(exact)
        worst = dict.fromkeys(HEAD_SIDE, 0.0)
        for _ in range(n):
            d = torch.randn(exact.shape, generator=g, dtype=torch.float64)
            out = head(exact + d / d.abs().max() * size)
            for k in HEAD_SIDE:
                worst[k] = max(worst[k], float((out[k] - base[k]).abs().max()))
    return worst


def test_channels_last_training_step(load, inputs, train_step):
    """``test_training_step`` (float32) in the channels-last training layout; see the module docstring."""
    import torch

    r = train_step(torch.float32)
    io, model, out = r["io"], r["model"], r["out"]
    conv = model.net.mfn.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()  # the fast layout
    io64 = load("osscl/train_step_io_float64.npz")
    floor = _noise_floor(load)
    assert floor["logits"] > f32_bound(io, io64, "logits", abs_=1e-3)["abs_"] / 4  # the premise, measured

    def bound(key, **kw):
        b = f32_bound(io, io64, key, **kw)
        return {"abs_": max(b["abs_"], floor[key])} if key in HEAD_SIDE else b

    tag = "train_step_io (channels-last training)"
    assert_close(out["logits"], io["logits"], what=f"{tag}:logits", **bound("logits", abs_=1e-3))
    assert_close(out["z"], io["feature"], what=f"{tag}:feature", **bound("feature", rel=1e-4))
    assert_close(out["head_out"], io["head_out"], what=f"{tag}:head_out", **bound("head_out", rel=1e-4))
    assert_close(out["emb"], io["mfn_feature"], what=f"{tag}:mfn_feature", **bound("mfn_feature", rel=1e-4))
    for ours, key in ((out["arcmix_loss"], "loss_namix"), (out["supcon_loss"], "loss_supcon"), (out["loss"], "loss_total")):
        assert_close(ours, io[key], what=f"{tag}:{key}", **bound(key, rel=1e-3))
    for ours, key in ((out["z"].grad, "grad_feature"), (out["head_out"].grad, "grad_head_out"),
                      (out["emb"].grad, "grad_mfn_feature")):
        assert_close(ours, io[key], what=f"{tag}:{key}", **bound(key, rel=5e-3))
    params = dict(model.named_parameters())
    keys = io.keys_matching("grad_param/")
    assert len(keys) == 18
    for key in keys:
        name = key[len("grad_param/"):]
        assert_close(params[osscl_to_auscult(name)].grad, io[key], what=f"{tag}:{key}",
                     **bound(key, rel=5e-3 if name.startswith(SHALLOW) else 3e-2))
    state = model.state_dict()
    for key in io.keys_matching("after_step_buffer/"):
        ours = state[osscl_to_auscult(key[len("after_step_buffer/"):])]
        if key.endswith("num_batches_tracked"):
            assert int(ours) == int(io[key]) == 2
        else:
            assert_close(ours, io[key], what=f"{tag}:{key}", rel=1e-4)
