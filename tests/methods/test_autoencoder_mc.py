"""autoencoder_mc's per-microphone statistics (``mics.norm`` / ``mics.backend: per_mic``) on a generated
two-microphone tree (the simulator's ``dcase2026`` preset): each microphone is standardised and scored
against its own training audio, the model switches microphones without retraining, survives a state
round trip, and misuse is a ConfigError that names the fix."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from auscult.errors import ConfigError

AUDIO = {"sample_rate": 16000, "channel": "both", "length": "keep"}
BASE = {"audio": AUDIO, "features": {"n_fft": 1024, "hop_length": 512, "n_mels": 32, "power": 2.0},
        "model": {"context": 3, "hidden": 16, "bottleneck": 4, "n_layers": 1, "normalize": True},
        "train": {"epochs": 1, "batch_size": 64}, "score": {"kind": "mahalanobis"}}
PER_MIC = {"norm": "per_mic", "backend": "per_mic"}


def _cfg(**mics):
    return {**BASE, "mics": dict(mics)}


@pytest.fixture(scope="module")
def fan26(tmp_path_factory):
    from auscult.data.index import DatasetIndex
    from auscult.data.synth import PRESETS, generate_dataset

    p = replace(PRESETS["dcase2026"], train_source=6, train_target=2, test_normal=2, test_anomaly=2, duration=1.0)
    root = generate_dataset(p, tmp_path_factory.mktemp("mc26") / "d", seed=3, machines=["fan"], workers=1,
                            probe=False)
    idx = DatasetIndex.scan(root)
    return list(idx.select(machine="fan", split="train")), list(idx.select(machine="fan", split="test"))


@pytest.fixture(scope="module")
def fitted(fan26):
    from auscult.data.source import AudioSource
    from auscult.methods import FitContext, build_method

    m = build_method("autoencoder_mc", _cfg(**PER_MIC), FitContext(seed=0, quiet=True))
    return m.fit(fan26[0], [], AudioSource(AUDIO))


def _src(channel):
    from auscult.data.source import AudioSource

    return AudioSource({**AUDIO, "channel": channel})


def test_each_microphone_is_standardised_with_its_own_training_frames(fan26, fitted):
    from auscult.methods import build_method

    raw = build_method("autoencoder_mc", {**BASE, "model": {**BASE["model"], "normalize": False}})
    raw._training = True
    f = raw.features(fan26[0], _src("both"))
    frame_mic = np.repeat(np.asarray(f.mic_of), f.lengths)
    data = f.data.double().numpy()
    for ch in (0, 1):
        mean, std = fitted._mic_norms[ch]
        np.testing.assert_allclose(mean.numpy(), data[frame_mic == ch].mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(std.numpy(), data[frame_mic == ch].std(0, ddof=1), rtol=1e-3, atol=1e-4)
    # the far mic hears more background: its bands sit elsewhere than the near mic's
    assert np.abs(fitted._mic_norms[0][0].numpy() - fitted._mic_norms[1][0].numpy()).max() > 0.5
    # the standardisation in use is the scored microphone's
    fitted.select_mic("far")
    assert fitted.norm is fitted._mic_norms[1] and fitted.backend is fitted._mic_backends[1]
    fitted.select_mic("near")
    assert fitted.norm is fitted._mic_norms[0] and fitted.backend is fitted._mic_backends[0]


def test_each_microphone_gets_a_back_end_fitted_on_its_own_residuals(fan26, fitted):
    from auscult.backends import BACKENDS, BackendMeta

    fitted._training = True
    try:
        f = fitted.features(fan26[0], _src("both"))
    finally:
        fitted._training = False
    blocks = fitted._residuals(f, "cpu").reshape(-1, 32).numpy()
    per_mat = np.asarray([n - 3 + 1 for n in f.lengths]) * 3
    rep = np.repeat(np.asarray(f.clip_of), per_mat)
    mic = np.repeat(np.asarray(f.mic_of), per_mat)
    for ch in (0, 1):
        rows = mic == ch
        be = BACKENDS.build("selective_mahalanobis", shrinkage="none", center=False, group_by="section")
        be.fit(blocks[rows], BackendMeta.from_clips([fan26[0][i] for i in rep[rows]]))
        got = fitted._mic_backends[ch].groups_
        assert set(got) == set(be.groups_)
        for key, st in be.groups_.items():
            for name, arr in st.items():
                np.testing.assert_allclose(got[key][name], arr, rtol=1e-6, atol=1e-9, err_msg=f"{ch} {key} {name}")


def test_scores_follow_the_selected_microphone_and_survive_a_state_round_trip(fan26, fitted):
    from auscult.methods import build_method

    train, test = fan26
    fitted.select_mic("far")
    far_mono = fitted.score(test, _src("far"))
    np.testing.assert_allclose(fitted.score(test, _src("both")), far_mono, rtol=1e-6)  # stereo: the far channel
    fitted.select_mic("near")
    near_mono = fitted.score(test, _src("near"))
    np.testing.assert_allclose(fitted.score(test, _src("both")), near_mono, rtol=1e-6)
    state = fitted.state_dict()
    assert set(state["mic_norms"]) == set(state["mic_backends"]) == {"near", "far"}
    for mic, want in (("far", far_mono), ("near", near_mono)):
        other = build_method("autoencoder_mc", _cfg(**PER_MIC, score=mic))
        other.load_state_dict(state)
        np.testing.assert_allclose(other.score(test, _src(mic)), want, rtol=1e-6)
    # the same network read with one shared back-end scores the far mic differently
    shared = build_method("autoencoder_mc", _cfg(**PER_MIC, score="far"))
    shared.load_state_dict(state)
    shared.refit_backend(train, _src("both"), "shared")
    assert shared._mic_backends is None
    assert not np.allclose(shared.score(test, _src("far")), far_mono)
    # a state without per-mic statistics cannot be read as a per-mic model
    plain = dict(state)
    del plain["mic_backends"]
    with pytest.raises(ConfigError, match="mics.backend is per_mic"):
        build_method("autoencoder_mc", _cfg(**PER_MIC)).load_state_dict(plain)


def test_per_mic_statistics_need_two_channel_training_audio(fan26):
    from auscult.methods import FitContext, build_method

    m = build_method("autoencoder_mc", {**_cfg(**PER_MIC), "audio": {**AUDIO, "channel": "near"}},
                     FitContext(seed=0, quiet=True))
    with pytest.raises(ConfigError, match=r"section_00_.*\.wav.*two-channel clips.*audio.channel: both"):
        m.fit(fan26[0], [], _src("near"))


@pytest.mark.parametrize("mics,model,score,match", [
    ({"norm": "per_mic"}, {"normalize": False}, {}, "needs model.normalize: true"),
    ({"backend": "per_mic"}, {}, {"kind": "mse"}, "needs score.kind: mahalanobis"),
    ({"norm": "per_mic", "train": "near"}, {}, {}, "set it to both"),
    ({"norm": "each"}, {}, {}, "mics.norm must be shared or per_mic"),
    ({"backend": True}, {}, {}, "mics.backend must be shared or per_mic"),
])
def test_misconfigured_per_mic_statistics_are_config_errors(mics, model, score, match):
    from auscult.methods import build_method

    cfg = {**BASE, "mics": mics, "model": {**BASE["model"], **model}, "score": {**BASE["score"], **score}}
    with pytest.raises(ConfigError, match=match):
        build_method("autoencoder_mc", cfg)


def test_select_mic_and_refit_backend_reject_unknown_names(fitted, fan26):
    with pytest.raises(ConfigError, match="near or far"):
        fitted.select_mic("left")
    with pytest.raises(ConfigError, match="shared or per_mic"):
        fitted.refit_backend(fan26[0], _src("both"), "both")


def test_explanation_reference_is_the_scored_microphones_training_audio(fan26, fitted):
    """The explanation's map is drawn for the scored microphone, so its reference (what training frames
    reached) comes from that microphone's training audio, not from the noisier far one's as well."""
    from auscult.monitor.explain import interior_frames, tail_reference

    fitted._training = True
    try:
        f = fitted.features(fan26[0], _src("both"))
    finally:
        fitted._training = False
    res = fitted._residuals(f, "cpu").double()
    cfg = fitted.feature_cfg

    def ref(ch):
        maps = [fitted._positive_map(res[f.owner == j], f.lengths[j])[
                    :, interior_frames(f.lengths[j], f.samples[j], cfg.n_fft, cfg.hop_length)]
                for j, m in enumerate(f.mic_of) if m == ch]
        return tail_reference(maps, smooth=1)

    near, far = ref(0), ref(1)
    assert fitted.explain_ref is not None
    np.testing.assert_allclose(fitted.explain_ref[0], near[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fitted.explain_ref[1], near[1], rtol=1e-6, atol=1e-9)
    assert not np.allclose(near[1], far[1])
    e = fitted.explain(fan26[1][0], _src("both"))
    assert e.tf_map.shape[0] == cfg.n_mels and np.all(e.tf_map >= 0) and "training frame" in e.how
