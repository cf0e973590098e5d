"""Parity with the DCASE ASD toolkit (github.com/TakuyaFujimura/dcase-asd-toolkit @ ed27d82, MIT):
sub-cluster AdaCos (fixed and dynamic scale, hard and mixup-soft labels), AdaCos, feature exchange
with its two heads, and the STFT branch of the multi-branch network (``asdkit/README.md``).

auscult's modules: :class:`~auscult.losses.SubClusterAdaCos` (AdaCos is its one-sub-cluster case),
:func:`~auscult.augment.with_feature_exchange`, :class:`~auscult.features.LinearSpectrogram` and the
dual-branch net's spectrogram branch with ``layout="asdkit"``. Every fixture here is float32: outputs
<= 1e-4 x max|ref| (the README's sub-module bound; the README measured 6.9e-6 abs between float32
and float64 for the branch output).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from auscult.augment import with_feature_exchange
from auscult.losses import SubClusterAdaCos
from auscult.nets import ClipGeometry, build_for_clip
from reftestlib import Capture, asdkit_stft_to_auscult, assert_close, load_mapped

pytestmark = pytest.mark.xdist_group("reference")

SUB = 1e-4
#: the toolkit's dis_multiresnet_1024 STFT branch in auscult's terms (README "Configuration reproduced")
ASDKIT_BRANCH = {"layout": "asdkit", "norm": "none", "se_reduction": 16, "temporal_norm": False,
                 "freq_bins": (13, 513)}


def adacos(centres: np.ndarray, n_classes: int, n_sub: int, scale: float, *, adaptive=False, trainable=False,
           rule="auscult"):
    """A SubClusterAdaCos holding the toolkit's weight ``W [D, C*K]`` (column ``j``: class ``j // K``)."""
    head = SubClusterAdaCos(centres.shape[0], n_classes, n_sub, trainable_centers=trainable, adaptive=adaptive,
                            scale=scale, scale_rule=rule, max_scale=1e6)
    with torch.no_grad():
        head.centers.copy_(torch.from_numpy(np.ascontiguousarray(centres.T)))
        head.scale.fill_(scale)
    return head


def per_sample_loss(head, emb, y):
    return -(y * head.class_log_probs(emb)).sum(1)


@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_scadacos_fixed_scale(load, labels):
    io = load("asdkit/scadacos_io.npz")
    c, k = int(io["n_classes"]), int(io["n_subclusters"])
    s0 = float(io["s_init"])
    assert s0 == pytest.approx(math.sqrt(2) * math.log(c * k - 1), rel=1e-12)
    head = adacos(io["W"], c, k, s0)
    assert head.initial_scale() == pytest.approx(s0, rel=1e-12)  # auscult's default scale is the toolkit's
    assert float(io["eps"]) == 1e-7  # the angle clamp of the dynamic rule (asdkit scale_rule uses the same)
    y = io.tensor(f"y_{labels}")
    emb = io.tensor("embed").requires_grad_(True)
    loss = head(emb, y)
    loss.backward()
    tag = f"scadacos_io:fixed_{labels}"
    assert_close(loss, io[f"fixed_{labels}_loss"], what=f"{tag}_loss", rel=SUB)
    with torch.no_grad():
        assert_close(per_sample_loss(head, emb, y), io[f"fixed_{labels}_loss_per_sample"],
                     what=f"{tag}_loss_per_sample", rel=SUB)
        if labels == "hard":
            assert_close(head.class_log_probs(emb), io["calc_logits_fixed"], what="scadacos_io:calc_logits_fixed",
                         rel=SUB)
    assert_close(emb.grad, io[f"fixed_{labels}_grad_embed"], what=f"{tag}_grad_embed", rel=SUB)


@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_scadacos_dynamic_scale_as_the_toolkit_codes_it(load, labels):
    """``scale_rule="asdkit"`` reproduces the toolkit's dynamic branch (train mode: the scale is
    re-estimated from the batch before the loss), including its tiled class angles."""
    io = load("asdkit/scadacos_io.npz")
    c, k = int(io["n_classes"]), int(io["n_subclusters"])
    head = adacos(io["W"], c, k, float(io["s_init"]), adaptive=True, rule="asdkit").train()
    y = io.tensor(f"y_{labels}")
    emb = io.tensor("embed").requires_grad_(True)
    loss = head(emb, y)
    loss.backward()
    tag = f"scadacos_io:dynamic_{labels}"
    assert_close(head.scale, io[f"dynamic_{labels}_s_after"], what=f"{tag}_s_after", rel=SUB)
    assert_close(loss, io[f"dynamic_{labels}_loss"], what=f"{tag}_loss", rel=SUB)
    assert_close(emb.grad, io[f"dynamic_{labels}_grad_embed"], what=f"{tag}_grad_embed", rel=SUB)
    if labels == "hard":
        # the class angles as the toolkit computes them (labels tiled: column j paired with class j mod C)
        diag = load("asdkit/diagnostics.json")
        with torch.no_grad():
            theta = torch.acos(head.cosine(io.tensor("embed")).clamp(-1 + 1e-7, 1 - 1e-7))
        tiled = (y.repeat(1, k) * theta).sum(1)
        assert_close(tiled, diag["scadacos_dynamic_theta_class_as_coded"],
                     what="asdkit/diagnostics.json:scadacos_dynamic_theta_class_as_coded", rel=SUB)
        own = theta.view(-1, c, k)[torch.arange(len(y)), y.argmax(1)].min(1).values
        assert_close(own, diag["scadacos_theta_min_over_own_class_subclusters"],
                     what="asdkit/diagnostics.json:scadacos_theta_min_over_own_class_subclusters", rel=SUB)
        # auscult's own rule groups the angles by class and leaves target centres out of B_avg:
        # a different scale on the same batch (the documented difference)
        ours = adacos(io["W"], c, k, float(io["s_init"]), adaptive=True).train()
        ours(io.tensor("embed"), y)
        assert abs(float(ours.scale) - float(head.scale)) > 0.1


def test_adacos_fixed_and_dynamic(load):
    """Plain AdaCos is sub-cluster AdaCos with one centre per class; auscult's own adaptive rule
    (non-target B_avg, median of the target angles, s = log B_avg / cos(min(pi/4, theta_med))) is
    the toolkit's AdaCos rule, so ``scale_rule="auscult"`` reproduces it."""
    io = load("asdkit/adacos_io.npz")
    w = io["W"]
    c = w.shape[1]
    s0 = float(io["s_init"])
    assert s0 == pytest.approx(math.sqrt(2) * math.log(c - 1), rel=1e-12)
    for labels in ("hard", "soft"):
        head = adacos(w, c, 1, s0)
        emb = io.tensor("embed").requires_grad_(True)
        loss = head(emb, io.tensor(f"y_{labels}"))
        loss.backward()
        assert_close(loss, io[f"fixed_{labels}_loss"], what=f"adacos_io:fixed_{labels}_loss", rel=SUB)
        assert_close(emb.grad, io[f"fixed_{labels}_grad_embed"], what=f"adacos_io:fixed_{labels}_grad_embed", rel=SUB)
    head = adacos(w, c, 1, s0, adaptive=True).train()
    emb = io.tensor("embed").requires_grad_(True)
    loss = head(emb, io.tensor("y_hard"))
    loss.backward()
    assert_close(head.scale, io["dynamic_hard_s_after"], what="adacos_io:dynamic_hard_s_after", rel=SUB)
    assert_close(loss, io["dynamic_hard_loss"], what="adacos_io:dynamic_hard_loss", rel=SUB)
    assert_close(emb.grad, io["dynamic_hard_grad_embed"], what="adacos_io:dynamic_hard_grad_embed", rel=SUB)


def test_feature_exchange_and_its_heads(load):
    """FeatEx with the stored decisions and permutation: the exchanged embedding keeps the first
    128-d half and takes the partner's second half; labels ``[y, 0, 0]`` / ``[0, y, y_perm] / 2``;
    main head (fixed centres, C classes) on the embedding + FeatEx head (trainable, 3C classes) on
    the exchanged one, both with fixed scales."""
    io = load("asdkit/featex_io.npz")
    sc = load("asdkit/scadacos_io.npz")
    diag = load("asdkit/diagnostics.json")
    emb0 = io.tensor("embed")
    assert torch.equal(emb0, sc.tensor("embed"))
    y = io.tensor("labels")
    assert torch.equal(y, sc.tensor("y_soft"))
    dec, perm = io.tensor("dec"), io.tensor("perm")
    assert dec.tolist() == diag["featex_dec"] and perm.tolist() == diag["featex_perm"]
    emb = emb0.clone().requires_grad_(True)
    emb_ex, y_ex = with_feature_exchange(emb, y, split=128, perm=perm, swap=dec > 0.5)
    assert_close(emb_ex, io["embed_ex"], what="featex_io:embed_ex", abs_=0)
    assert_close(y_ex, io["labels_ex"], what="featex_io:labels_ex", abs_=0)
    c, k = y.shape[1], 16
    main = adacos(sc["W"], c, k, float(io["s_main"]))
    featex = adacos(io["W_featex"], 3 * c, k, float(io["s_featex"]), trainable=True)
    assert featex.initial_scale() == pytest.approx(float(io["s_featex"]), rel=1e-12)
    l_main, l_featex = main(emb, y), featex(emb_ex, y_ex)
    total = l_main + 1.0 * l_featex
    total.backward()
    assert_close(l_main, io["loss_main"], what="featex_io:loss_main", rel=SUB)
    assert_close(l_featex, io["loss_featex"], what="featex_io:loss_featex", rel=SUB)
    assert_close(total, io["loss_total"], what="featex_io:loss_total", rel=SUB)
    assert_close(emb.grad, io["grad_embed"], what="featex_io:grad_embed", rel=SUB)
    assert_close(featex.centers.grad.T, io["grad_W_featex"], what="featex_io:grad_W_featex", rel=SUB)
    # eval mode of the toolkit's FeatEx leaves everything unchanged: auscult's swap mask of zeros
    same, y0 = with_feature_exchange(emb0, y, split=128, perm=perm, swap=torch.zeros(8, dtype=torch.bool))
    assert torch.equal(same, emb0) and torch.equal(y0[:, :c], y) and not y0[:, c:].any()


def test_stft_branch(load, device, prepare):
    """The toolkit's STFT branch of the multi-branch net (10 s, n_fft 1024, hop 512, magnitude,
    normalised STFT, 200-8000 Hz) as auscult's dual-branch spectrogram branch with the toolkit's
    layout, built from the 10 s clip geometry, on the four OS-SCL clips."""
    from auscult.features import FeatureConfig, LinearSpectrogram

    state, io, diag = load("asdkit/stft_branch_state.npz"), load("asdkit/stft_branch_io.npz"), \
        load("asdkit/diagnostics.json")
    geo = ClipGeometry(duration=10.0, n_fft=1024, hop_length=512)
    net = build_for_clip("dualbranch", geo, **ASDKIT_BRANCH).spectrogram
    used = load_mapped(net, state, asdkit_stft_to_auscult)
    assert set(state) - set(used) == {"stft.stft.window"}
    front = LinearSpectrogram(FeatureConfig(n_fft=1024, hop_length=512), power=1.0, normalized=True)
    # the stored window is the periodic Hann window auscult's front-end uses (to float32 rounding:
    # torch computes it in float32, auscult in float64 then rounds)
    assert_close(front.spectrogram.window, state["stft.stft.window"], what="stft_branch_state:stft.stft.window",
                 rel=1e-6)
    n_ours = sum(p.numel() for p in net.parameters())  # before the hook (a folded copy has conv biases)
    net = prepare(net.to(device).eval(), "asdkit_stft_branch")
    wav = load("osscl/inputs.npz").tensor("x_wav")[:, 0].to(device)
    cap = Capture({"bn_freq": net.freq_norm, "layers0": net.stem, "layers1": net.stages[1], "layers2": net.stages[3],
                   "layers3": net.stages[5], "layers4": net.stages[7]})
    with torch.no_grad():
        spec = front.to(device)(wav)
        out = net(spec)
    cap.remove()
    kept = spec[:, 13:513]
    assert list(kept.shape) == io["spec_shape"].tolist() == diag["layer_shapes"]["spec"]
    assert_close(kept[:, :32], io["spec_first32bins"], what="stft_branch_io:spec_first32bins", rel=SUB)
    assert_close(kept.mean(-1), io["spec_time_mean"], what="stft_branch_io:spec_time_mean", rel=SUB)
    shapes = diag["layer_shapes"]
    assert list(cap.out["bn_freq"][:, :64].shape) == shapes["bn_freq_out_first64"]
    for i in range(5):
        assert list(cap.out[f"layers{i}"].shape) == shapes[f"layers{i}_out"]
    assert list(out.shape) == shapes["out"]
    assert_close(cap.out["layers2"][:, :4], io["layers2_out_ch0to3"], what="stft_branch_io:layers2_out_ch0to3", rel=SUB)
    assert_close(cap.out["layers3"][:, :8], io["layers3_out_ch0to7"], what="stft_branch_io:layers3_out_ch0to7", rel=SUB)
    assert_close(cap.out["layers4"][:, :32], io["layers4_out_ch0to31"], what="stft_branch_io:layers4_out_ch0to31",
                 rel=SUB)
    assert_close(cap.out["layers4"].amax(-1), io["maxtime_out"], what="stft_branch_io:maxtime_out", rel=SUB)
    assert_close(out, io["out"], what="stft_branch_io:out", rel=SUB)
    # the branch is columns 128-255 of the toolkit's full embedding (checked bitwise there); auscult's
    # branch has exactly the stored branch's parameters (bias-free, no BN affine), and the rest of
    # the toolkit's 2,495,568 parameters is its FFT branch (1,531,136 values with BN statistics)
    assert diag["stft_branch_equals_multiresnet_slice"] is True
    assert n_ours == sum(state[k].size for k in state if k.endswith("weight") and k != "stft.stft.window")
    assert 0 < diag["multiresnet_param_count"] - n_ours < 1_531_136
