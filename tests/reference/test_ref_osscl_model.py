"""OS-SCL parity of the whole model as ``recipes/dcase2020/osscl_tfstgram.yaml`` builds it: the
eval-mode forward, the anomaly score (batch 1 and batch 4) and one complete training step (mixup,
NAMix + SupCon, gradients of the features and of 18 parameters, batch-norm buffers after the step),
in float32 and float64, against the numbers of the OS-SCL authors' code (``osscl/README.md``).

The model is built by the method (``OSSCL._build_model``) for 41 classes and 10 s clips, loaded
through the name map ``reftestlib.osscl_to_auscult`` and fed the reference's log-mel ``x_mel``
(``test_ref_osscl_modules`` checks auscult's own front-end against it; the end-to-end score test
below uses it).

Bounds (README): float64 <= 1e-8 x max|ref|; float32 sub-module outputs <= 1e-4 x max|ref|, logits
<= 1e-3 abs, scores <= 5e-4 abs, losses <= 1e-3 relative, parameter gradients <= 0.5 % of max|ref|
(head, ArcFace, embedding layers) and <= 3 % (deep convolutions). For a float32 array of the whole
model that also exists in float64, the bound is the larger of that and twice the reference's own
float32 rounding error (its float32 array against its float64 one): through 4-sample train-mode
batch norm and the head's small-variance channels the reference's own float32 head output is
4.7e-4 (eval) / 1.9e-3 (train) away from its float64 one, above the 1e-4 x max sub-module bound. The
float64 runs, which must agree to 1e-8, show the computation is the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auscult.methods import FitContext, build_method
from auscult.methods.osscl import cross_entropy_at
from auscult.recipes import load_recipe
from reftestlib import Capture, assert_close, load_mapped, osscl_to_auscult

pytestmark = pytest.mark.xdist_group("reference")

F64 = 1e-8
SUB = 1e-4
N_CLASSES = 41
PARTS = ("tgramnet", "tfgram", "mobilefacenet", "head_basic", "arcface")
PREFIX = {"tgramnet": "tgramnet.", "tfgram": "TFgramNet.", "mobilefacenet": "mobilefacenet.", "head_basic": "head.",
          "arcface": "arcface."}


def reference_state(load) -> dict[str, np.ndarray]:
    """The full ``SCLTFSTgramMFN`` state: the union of the five part files under their prefixes."""
    out = {}
    for part in PARTS:
        st = load(f"osscl/{part}_state.npz")
        out.update({PREFIX[part] + k: st[k] for k in st})
    return out


def f32_bound(io32, io64, key: str, *, rel: float | None = None, abs_: float | None = None) -> dict[str, float]:
    """``assert_close`` bound for float32 array ``key``: the README bound, widened to twice the
    reference's own float32-vs-float64 difference for that array."""
    ref32, ref64 = np.asarray(io32[key], np.float64), np.asarray(io64[key], np.float64)
    own = 2.0 * float(np.max(np.abs(ref32 - ref64)))
    base = rel * float(np.max(np.abs(ref32))) if rel is not None else float(abs_)
    return {"abs_": max(base, own)}


def build(load, dtype, device, *, recipe="dcase2020/osscl_tfstgram", score_batch=32):
    cfg = load_recipe(recipe)
    cfg["score"] = {**cfg["score"], "batch_size": score_batch}
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True))
    m.n_samples, m.classes = 160000, [f"class{i:02d}" for i in range(N_CLASSES)]
    torch.manual_seed(0)
    model = m._build_model()
    load_mapped(model, reference_state(load), osscl_to_auscult, keep=("mel_mean", "mel_std"))
    return m, model.to(device=device, dtype=dtype)


@pytest.fixture(scope="module")
def inputs(load):
    return load("osscl/inputs.npz")


def test_state_map_covers_the_reference_model(load):
    """222 entries, 1,377,535 used parameters (the paper's 1.38 M): auscult's model has exactly the
    reference's used parameters, plus nothing but the discarded ``fc_out`` on the reference side."""
    diag = load("osscl/diagnostics.json")
    state = reference_state(load)
    assert len(state) == diag["full_state_num_entries"] == 222
    m, model = build(load, torch.float32, torch.device("cpu"))
    n_ours = sum(p.numel() for p in model.parameters())
    fc = sum(state[k].size for k in ("mobilefacenet.fc_out.weight", "mobilefacenet.fc_out.bias"))
    assert n_ours == diag["pruned_param_count"] - fc
    assert diag["pruned_param_count"] == 1377535
    # the reference's fc_out and pruned TFgram layers get no gradient; auscult has neither
    assert diag["fc_out_grad_is_none"] is True and diag["pruned_layers_grad_is_none"] is True
    assert not any("fc_out" in k or "conv_block" in k for k in model.state_dict())


def test_logmel_recipe_model_size(load):
    """``recipes/dcase2020/osscl.yaml`` (the code's ``fussion: 2``, log-mel only, LeakyReLU head):
    the README's used-parameter count of that model, 897,257, less the discarded ``fc_out``."""
    state = reference_state(load)
    fc = sum(state[k].size for k in ("mobilefacenet.fc_out.weight", "mobilefacenet.fc_out.bias"))
    cfg = load_recipe("dcase2020/osscl")
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True))
    m.n_samples, m.classes = 160000, [f"class{i:02d}" for i in range(N_CLASSES)]
    model = m._build_model()
    assert model.net.input_shapes == ((1, 128, 313),) and model.head.layout == "act_bn"
    assert sum(p.numel() for p in model.parameters()) == 897_257 - fc


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_full_model_eval(load, inputs, device, prepare, dtype):
    """``trainer.py: valid`` forward (eval mode, batch 4, margin logits at the label) through the
    method's logits path; float64 also the anomaly scores at batch 1 and 4 (``eval.py``)."""
    f32 = dtype == torch.float32
    io = load("osscl/scltfstgrammfn_eval_io.npz" if f32 else "osscl/scltfstgrammfn_eval_io_float64.npz")
    tag = "scltfstgrammfn_eval_io" + ("" if f32 else "_float64")
    m, model = build(load, dtype, device, score_batch=4)
    model = prepare(model.eval(), "osscl_model")
    wav = inputs.tensor("x_wav", dtype)[:, 0].to(device)
    mel = inputs.tensor("x_mel", dtype)[:, 0].to(device)
    y = io.tensor("labels").to(device)
    assert torch.equal(y.cpu(), inputs.tensor("labels"))
    # one batch-4 pass through the method's scoring path (eval mode, margin logits at the own class);
    # the hooks keep what it computed on the way
    cap = Capture({"emb": model.net, "head_out": model.head.net, "z": model.head, "tgram": model.net.tgram,
                   "tfgram": model.net.tfgram})
    scores4 = m._ce_scores(model, wav, y, mel=mel)
    cap.remove()
    emb, head_out, z = cap.out["emb"], cap.out["head_out"], cap.out["z"]
    with torch.no_grad():
        logits = model.arcmix.logits(z, y)
    assert torch.equal(cross_entropy_at(logits, y).cpu(), scores4)
    if f32:
        io64 = load("osscl/scltfstgrammfn_eval_io_float64.npz")

        def bound(key, **kw):
            return f32_bound(io, io64, key, **kw)
    else:
        def bound(key, **kw):
            return {"rel": F64}
    assert_close(emb, io["mfn_feature"], what=f"{tag}:mfn_feature", **bound("mfn_feature", rel=SUB))
    assert_close(head_out, io["head_out"], what=f"{tag}:head_out", **bound("head_out", rel=SUB))
    assert_close(z, io["feature"], what=f"{tag}:feature", **bound("feature", rel=SUB))
    assert_close(logits, io["logits"], what=f"{tag}:logits", **bound("logits", abs_=1e-3))
    sd = reference_state(load)
    fc = F.linear(emb.cpu(), torch.from_numpy(sd["mobilefacenet.fc_out.weight"]).to(dtype),
                  torch.from_numpy(sd["mobilefacenet.fc_out.bias"]).to(dtype))
    assert_close(fc, io["mfn_fc_out"], what=f"{tag}:mfn_fc_out", **bound("mfn_fc_out", rel=SUB))
    # the one forward equals the composition of its parts (the reference checked the same of its own)
    with torch.no_grad():
        again = model.arcmix.logits(F.normalize(model.head.project(emb), dim=1), y)
    assert torch.equal(again, logits)
    if f32:
        diag = load("osscl/diagnostics.json")
        assert diag["eval_forward_vs_recomposed_maxabs_logits"] == 0.0
        assert diag["eval_forward_vs_recomposed_maxabs_feature"] == 0.0
        # the Tgram / TFgram maps inside the model are the stand-alone fixtures' outputs (bitwise there)
        assert_close(cap.out["tgram"], load("osscl/tgramnet_io.npz")["out"], what=f"{tag}:tgram (tgramnet_io.out)",
                     rel=SUB)
        assert_close(cap.out["tfgram"], load("osscl/tfgram_io.npz")["out"], what=f"{tag}:tfgram (tfgram_io.out)",
                     rel=SUB)
        return
    # eval.py: one clip per batch, cross-entropy of the margin logits at the own class
    with torch.no_grad():
        b1 = torch.cat([model.class_logits(wav[i:i + 1], mel[i:i + 1], y[i:i + 1], margin=True) for i in range(4)])
    assert_close(b1, io["anomaly_logits_batch1"], what=f"{tag}:anomaly_logits_batch1", rel=F64)
    assert_close(cross_entropy_at(b1, y), io["anomaly_scores_batch1"], what=f"{tag}:anomaly_scores_batch1", rel=F64)
    assert_close(scores4, io["anomaly_scores_batch4"], what=f"{tag}:anomaly_scores_batch4 (method)", rel=F64)


def test_anomaly_score_float32(load, inputs, device, prepare):
    """``eval.py``: eval mode, one clip per batch, cross-entropy of the margin logits at the clip's
    own class after the head, and the batch-4 pass: through the method's scoring path
    (``score.margin: true`` of the recipe) with the reference's log-mel; then end to end from the
    waveform (auscult's own 2048-point log-mel) with the plain and the inference-copy (folded) model."""
    io = load("osscl/anomaly_score_io.npz")
    m, model = build(load, torch.float32, device, score_batch=1)
    model = prepare(model.eval(), "osscl_model")
    assert m.opts["score"]["margin"] is True
    wav = inputs.tensor("x_wav")[:, 0].to(device)
    mel = inputs.tensor("x_mel")[:, 0].to(device)
    y = io.tensor("labels").to(device)
    s1 = m._ce_scores(model, wav, y, mel=mel)  # batches of 1
    assert_close(s1, io["scores"], what="anomaly_score_io:scores", abs_=5e-4)
    cap = Capture({"z": model.head})
    with torch.no_grad():
        b1 = torch.cat([model.class_logits(wav[i:i + 1], mel[i:i + 1], y[i:i + 1], margin=True) for i in range(4)])
        b4 = model.class_logits(wav, mel, y, margin=True)
    cap.remove()
    assert torch.equal(cross_entropy_at(b1, y), s1.to(b1.device))
    assert_close(b1, io["logits"], what="anomaly_score_io:logits", abs_=1e-3)
    assert_close(b4, io["logits_batch4"], what="anomaly_score_io:logits_batch4", abs_=1e-3)
    with torch.no_grad():
        cos = model.arcmix.cosine(cap.out["z"])
    assert_close(cos, io["cosine"], what="anomaly_score_io:cosine", rel=SUB)
    assert_close(cross_entropy_at(b4, y), io["scores_batch4"], what="anomaly_score_io:scores_batch4", abs_=5e-4)
    # the reference's batch-1 vs batch-4 gaps are float32 rounding of this size
    diag = load("osscl/diagnostics.json")
    assert diag["score_batch1_vs_batch4_maxabs"] == pytest.approx(
        float(np.abs(io["scores"] - io["scores_batch4"]).max()))
    assert diag["logits_batch1_vs_batch4_maxabs"] == pytest.approx(
        float(np.abs(io["logits"] - io["logits_batch4"]).max()))
    # end to end (batches of 4): auscult's front-end computes the log-mel, plain and inference copy
    from auscult.nets.inference import inference_copy

    m.opts["score"]["batch_size"] = 4
    assert_close(m._ce_scores(model, wav, y), io["scores_batch4"],
                 what="anomaly_score_io:scores_batch4 (auscult log-mel)", abs_=5e-4)
    assert_close(m._ce_scores(inference_copy(model), wav, y), io["scores_batch4"],
                 what="anomaly_score_io:scores_batch4 (auscult log-mel, inference copy)", abs_=5e-4)


#: parameters whose gradients are held to 0.5 % of max|ref|; the rest (deep convolutions) to 3 %
SHALLOW = ("arcface.", "head.", "mobilefacenet.linear")


@pytest.fixture(scope="module")
def train_step(load, inputs, device, prepare):
    """``trainer.py: Trainer.train`` for one batch, per dtype (computed once): mixup of waveform and
    log-mel with the stored lambda and permutation, the model in train mode, loss = Noisy-ArcMix +
    SupCon (``os_scl``), backward; through ``OSSCL.mixed_loss`` with the recipe's settings."""
    from auscult.augment import mixup

    done: dict[torch.dtype, dict] = {}

    def run(dtype):
        if dtype in done:
            return done[dtype]
        io = load("osscl/train_step_io.npz" if dtype == torch.float32 else "osscl/train_step_io_float64.npz")
        m, model = build(load, dtype, device)
        model = prepare(model.train(), "osscl_model_train")  # the hook; "_train": same module, parameters kept
        lam, index = float(io["lam"]), io.tensor("index")
        y_a, y_b = io.tensor("y_a").to(device), io.tensor("y_b").to(device)
        assert torch.equal(y_a.cpu(), inputs.tensor("labels")) and torch.equal(y_b.cpu(), y_a.cpu()[index])
        wav = inputs.tensor("x_wav", dtype)[:, 0].to(device)
        mel = inputs.tensor("x_mel", dtype)[:, 0].to(device)
        wav_mix = mixup(wav, perm=index, lam=lam).x
        mel_mix = mixup(mel, perm=index, lam=lam).x
        mel_in = mel_mix.detach().requires_grad_(True)
        out = m.mixed_loss(model, wav_mix, mel_in, y_a, y_b, lam, return_parts=True)
        for k in ("emb", "head_out", "z"):
            out[k].retain_grad()
        out["loss"].backward()
        done[dtype] = {"io": io, "model": model, "out": out, "wav_mix": wav_mix, "mel_mix": mel_mix,
                       "grad_x_mel": mel_in.grad, "index": index, "lam": lam}
        return done[dtype]

    return run


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_training_step(load, inputs, train_step, dtype):
    f32 = dtype == torch.float32
    r = train_step(dtype)
    io, model, out = r["io"], r["model"], r["out"]
    tag = "train_step_io" + ("" if f32 else "_float64")
    if f32:
        assert_close(r["mel_mix"][:, None], io["mixed_x_mel"], what=f"{tag}:mixed_x_mel", rel=1e-6)
        # float32 lam and 1 - lam applied as the reference applies them (README): same to rounding
        x, lam = inputs["x_wav"][:, 0], r["lam"]
        ref_wav = np.float32(lam) * x + np.float32(1 - lam) * x[r["index"].numpy()]
        diag = load("osscl/diagnostics.json")
        assert diag["mixed_wav_torch_vs_numpy_float32_scalars_maxabs"] == 0.0
        assert_close(r["wav_mix"], ref_wav, what=f"{tag}:mixed waveform", rel=1e-6)
        io64 = load("osscl/train_step_io_float64.npz")

        def bound(key, **kw):
            return f32_bound(io, io64, key, **kw)
    else:
        def bound(key, **kw):
            return {"rel": F64}
    assert_close(out["logits"], io["logits"], what=f"{tag}:logits", **bound("logits", abs_=1e-3))
    assert_close(out["z"], io["feature"], what=f"{tag}:feature", **bound("feature", rel=SUB))
    assert_close(out["head_out"], io["head_out"], what=f"{tag}:head_out", **bound("head_out", rel=SUB))
    assert_close(out["emb"], io["mfn_feature"], what=f"{tag}:mfn_feature", **bound("mfn_feature", rel=SUB))
    assert_close(out["arcmix_loss"], io["loss_namix"], what=f"{tag}:loss_namix", **bound("loss_namix", rel=1e-3))
    assert_close(out["supcon_loss"], io["loss_supcon"], what=f"{tag}:loss_supcon", **bound("loss_supcon", rel=1e-3))
    assert_close(out["loss"], io["loss_total"], what=f"{tag}:loss_total", **bound("loss_total", rel=1e-3))
    g_shallow, g_deep = (5e-3, 3e-2) if f32 else (F64, F64)
    assert_close(out["z"].grad, io["grad_feature"], what=f"{tag}:grad_feature", **bound("grad_feature", rel=g_shallow))
    assert_close(out["head_out"].grad, io["grad_head_out"], what=f"{tag}:grad_head_out",
                 **bound("grad_head_out", rel=g_shallow))
    assert_close(out["emb"].grad, io["grad_mfn_feature"], what=f"{tag}:grad_mfn_feature",
                 **bound("grad_mfn_feature", rel=g_shallow))
    params = dict(model.named_parameters())
    keys = io.keys_matching("grad_param/")
    assert len(keys) == 18
    for key in keys:
        name = key[len("grad_param/"):]
        grad = params[osscl_to_auscult(name)].grad
        assert_close(grad, io[key], what=f"{tag}:{key}",
                     **bound(key, rel=g_shallow if name.startswith(SHALLOW) else g_deep))
    if not f32:
        return
    # the gradient w.r.t. the mixed log-mel has no float64 reference array; auscult's float64 step
    # (equal to the reference's float64 on every stored float64 array, above) stands in for it
    ref32 = io["grad_x_mel"][:, 0].astype(np.float64)
    ours64 = train_step(torch.float64)["grad_x_mel"].double().cpu().numpy()
    own = 2.0 * float(np.max(np.abs(ref32 - ours64)))
    assert_close(r["grad_x_mel"][:, None], io["grad_x_mel"], what=f"{tag}:grad_x_mel",
                 abs_=max(g_deep * float(np.max(np.abs(ref32))), own))
    # every batch-norm buffer after this train-mode forward (num_batches_tracked: 1 -> 2)
    state = model.state_dict()
    keys = io.keys_matching("after_step_buffer/")
    n_bn = sum(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in model.modules())
    assert len(keys) == 3 * n_bn
    for key in keys:
        ours = state[osscl_to_auscult(key[len("after_step_buffer/"):])]
        if key.endswith("num_batches_tracked"):
            assert int(ours) == int(io[key]) == 2
        else:
            assert_close(ours, io[key], what=f"{tag}:{key}", rel=SUB)


def test_clips_load_as_the_reference_read_them(inputs, request):
    """The four clips (DCASE 2021 gearbox, section 00 source test) read with the recipe's audio
    settings give the reference's waveforms bit for bit (PCM16 / 32768, first 10 s). Needs the real
    clips in ../shared/data (skips without them, after checking the names)."""
    from auscult.audio import AudioConfig, load_audio
    from reftestlib import shared_data_root

    names = [str(n) for n in inputs["clip_names"]]
    assert names == [f"section_00_source_test_{k}.wav" for k in
                     ("normal_0000", "normal_0001", "anomaly_0000", "anomaly_0001")]
    root = shared_data_root()
    folder = None if root is None else root / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    if folder is None or not folder.is_dir():
        pytest.skip("the DCASE 2021 gearbox clips are not in ../shared/data")
    cfg = AudioConfig(**load_recipe("dcase2020/osscl_tfstgram")["audio"])
    wav = np.stack([load_audio(folder / n, cfg) for n in names])
    assert_close(wav, inputs["x_wav"][:, 0], what="inputs.npz:x_wav (read from the wav files)", abs_=0)
