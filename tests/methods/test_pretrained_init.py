"""``net.pretrained: auscult-machine-v1``: a research method's net initialised from the encoder shipped in
the package (issue 16), offline, with clear errors, and runs that rebuild from the package alone."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from auscult.errors import ConfigError
from auscult.methods import _neural as nu
from auscult.nets import ClipGeometry

ENC = "auscult-machine-v1"


def _geo(duration=4.0, hop=256, n_mels=64, n_fft=1024):
    return ClipGeometry(duration=duration, sample_rate=16000, n_fft=n_fft, hop_length=hop, n_mels=n_mels)


def test_every_weight_that_fits_is_the_encoders():
    from auscult.encoders import CNNEncoder

    enc = CNNEncoder(ENC).net.state_dict()
    torch.manual_seed(0)
    net = nu.build_net("mobilefacenet", {"pretrained": ENC, "activation": "relu"}, _geo(4.0))
    own = net.state_dict()
    # a 4 s clip has a longer feature map than the encoder's 2 s crop: only the global depthwise conv
    # (kernel = map size) keeps its fresh initialisation
    assert net.pretrained_from["kept_fresh"] == ["gdconv.0.weight"]
    assert own["gdconv.0.weight"].shape != enc["gdconv.0.weight"].shape
    for k, v in enc.items():
        if k != "gdconv.0.weight":
            assert torch.equal(own[k], v), k
    # the encoder's own crop length: every tensor loaded
    crop = ClipGeometry(duration=125 * 256 / 16000, sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    full = nu.build_net("mobilefacenet", {"pretrained": ENC}, crop)
    assert full.pretrained_from["kept_fresh"] == [] and full.map_size == CNNEncoder(ENC).net.map_size
    x = torch.randn(2, 1, 64, full.input_shapes[0][2])
    with torch.no_grad():
        np.testing.assert_allclose(full.eval()(x).numpy(), CNNEncoder(ENC).net(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kwargs, geo, match", [
    ("mobilefacenet", {"pretrained": "my/encoder.json"}, _geo(), "not a shipped encoder"),
    ("resnet18_tfap", {"pretrained": ENC}, _geo(), "set net.name: mobilefacenet"),
    ("mobilefacenet", {"pretrained": ENC, "width": 512}, _geo(), "net.width"),
    ("mobilefacenet", {"pretrained": ENC, "activation": "prelu"}, _geo(), "net.activation"),
    ("mobilefacenet", {"pretrained": ENC}, _geo(hop=512), "features.hop_length=256"),
    ("mobilefacenet", {"pretrained": ENC}, _geo(n_mels=128), "features.n_mels: 128"),
])
def test_errors_name_the_setting_and_the_fix(name, kwargs, geo, match):
    with pytest.raises(ConfigError, match=match):
        nu.build_net(name, kwargs, geo)


def test_a_run_initialised_from_the_encoder_scores_and_reloads(synth_once, tmp_path, one_thread):
    """CLSIA (a MobileFaceNet over log-mel) through the research door with net.pretrained: it trains,
    and scoring from the run folder rebuilds the net from the package and gives the same scores."""
    from auscult import pipeline
    from auscult.data.synth import generate_dataset

    data = synth_once("walk_demo", lambda out: generate_dataset("demo", out, seed=0, machines=["fan", "valve"],
                                                                scale=0.4, duration=2.0, workers=1, probe=False))
    sets = ["train.epochs=1", "train.batch_size=8", "clsia.queue_size=32", "augment.logmixupexp.bank_size=32",
            "audio.duration=2.0", "features.hop_length=256", f"net.pretrained={ENC}"]
    rd, _ = pipeline.run("synthetic/clsia", data, tmp_path / "run", overrides=sets, device="cpu", quiet=True,
                         cache_dir=tmp_path / "cache")

    def scores():
        with open(Path(rd) / "scores" / "test_scores.csv", newline="") as f:
            return {r["path"]: float(r["score"]) for r in csv.DictReader(f)}

    first = scores()
    assert first and all(np.isfinite(list(first.values())))
    pipeline.score(rd, data, device="cpu", cache_dir=tmp_path / "cache")
    assert scores() == first
