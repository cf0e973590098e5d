"""MobileFaceNet's ``readout`` option: the published global depthwise conv (``gdc``, default, same
layers and initialisation as before the option existed) or a pooled read-out (``mean`` /
``meanstd``) over the last feature map; wiring through the recipes' ``net:`` section, typed errors,
ONNX export (the CLSIA fit and state round trip: tests/methods/test_clsia.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auscult.errors import ConfigError
from auscult.methods import FitContext, build_method
from auscult.methods import _neural as nu
from auscult.nets import NETS, MobileFaceNet, build_for_clip
from auscult.nets.layers import ClipGeometry


def _net(readout=None, shape=(1, 32, 40), seed=0, **kw):
    torch.manual_seed(seed)
    extra = {} if readout is None else {"readout": readout}
    return MobileFaceNet(shape, emb_dim=16, activation="relu", **kw, **extra)


def test_gdc_is_the_default_and_builds_the_published_layers_unchanged():
    a, b = _net(None), _net("gdc")
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # same names, same order
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k  # same initialisation draws
    assert "gdconv.0.weight" in sa and sa["gdconv.0.weight"].shape[-2:] == a.map_size
    x = torch.randn(3, 1, 32, 40)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        # the forward is the published one: project(gdconv(features))
        assert torch.equal(a(x), a.project(a.gdconv(a.forward_features(x))).flatten(1))


@pytest.mark.parametrize("readout", ["mean", "meanstd"])
def test_pooled_readouts_compute_what_they_say(readout):
    net = _net(readout).eval()
    sd = net.state_dict()
    assert not any(k.startswith("gdconv") for k in sd)
    width = net.expand[0].out_channels
    assert sd["project.0.weight"].shape == (16, width * (2 if readout == "meanstd" else 1), 1, 1)
    x = torch.randn(4, 1, 32, 40)
    with torch.no_grad():
        f = net.forward_features(x)  # [B, width, h, w]
        flat = f.flatten(2)
        pooled = flat.mean(-1)
        if readout == "meanstd":
            std = (flat.var(-1, unbiased=False) + 1e-5).sqrt()
            pooled = torch.cat([pooled, std], 1)
        # the projection is a 1x1 conv + batch norm (eval: running statistics) on the pooled vector
        conv, bn = net.project[0], net.project[1]
        z = pooled @ conv.weight.flatten(1).T
        want = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("readout", ["mean", "meanstd"])
def test_pooled_readouts_train_and_take_any_input_size(readout):
    net = _net(readout, shape=(1, 32, 40))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(4, 1, 32, 40)
    loss = net(x).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    net.eval()
    with torch.no_grad():  # no layer depends on the map size: another clip length runs
        assert net(torch.randn(2, 1, 32, 77)).shape == (2, 16)
        # a map of one position (std over one value = 0): finite, thanks to the constant
        tiny = net(torch.randn(2, 1, 32, 8))
        assert torch.isfinite(tiny).all()


def test_bad_readout_and_settings_are_typed_errors_naming_the_fix():
    with pytest.raises(ConfigError, match="net.readout must be one of gdc, mean, meanstd"):
        _net("max")
    # through the recipe path: a net that does not take the setting names the nets that do
    with pytest.raises(ConfigError, match=r"net.readout: not a setting of net resnet18_tfap.*mobilefacenet"):
        nu.build_net("resnet18_tfap", {"readout": "mean"}, ClipGeometry(duration=2.0, n_mels=64))
    with pytest.raises(ConfigError, match=r"net.rEadout: not a setting of net mobilefacenet.*remove net.rEadout"):
        nu.check_net_kwargs("mobilefacenet", {"rEadout": "mean"})
    # at method construction, before any data is read
    cfg = {"method": "protoasd", "net": {"name": "resnet18_tfap", "readout": "mean"}}
    with pytest.raises(ConfigError, match="net.readout"):
        build_method("protoasd", cfg, FitContext(seed=0, quiet=True))
    cfg = {"method": "clsia", "net": {"name": "mobilenetv2", "readout": "mean"}}
    with pytest.raises(ConfigError, match="net.readout.*mobilefacenet"):
        build_method("clsia", cfg, FitContext(seed=0, quiet=True))
    # a valid setting is accepted by the methods that build a MobileFaceNet
    for method in ("osscl", "clsia"):
        build_method(method, {"method": method, "net": {"name": "mobilefacenet", "readout": "mean"}},
                     FitContext(seed=0, quiet=True))
    # valid settings pass the check (the OS-SCL paper recipes' nets included)
    nu.check_net_kwargs("mobilefacenet", {"activation": "prelu", "emb_dim": 128, "readout": "gdc", "pretrained": "x"})
    nu.check_net_kwargs("tfstgram_mfn", {"channels": ["logmel"], "tgram_kernel": 1024, "readout": "mean"})


def test_readout_reaches_the_mobilefacenet_of_the_stacked_nets():
    geo = ClipGeometry(duration=1.0, n_mels=32, n_fft=512, hop_length=256)
    for readout in ("gdc", "mean"):
        net = build_for_clip("stgram_mfn", geo, emb_dim=16, activation="relu", readout=readout)
        assert net.mfn.readout == readout
        assert ("mfn.gdconv.0.weight" in net.state_dict()) == (readout == "gdc")
    default = NETS.build("tfstgram_mfn")
    assert default.mfn.readout == "gdc"


@pytest.mark.parametrize("readout", ["mean", "meanstd"])
def test_onnx_export_of_a_pooled_readout_gives_the_same_embeddings(readout, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = _net(readout).eval()
    x = torch.randn(3, 1, 32, 40)
    path = tmp_path / "mfn.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["emb"],
                      dynamic_axes={"x": {0: "batch"}, "emb": {0: "batch"}}, opset_version=17, dynamo=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), rtol=1e-4, atol=1e-5)


def test_shipped_encoder_initialises_a_pooled_readout():
    """``net.pretrained`` with another read-out: every tensor whose shape fits loads; the encoder's
    global depthwise conv is simply not there (``mean``), or the wider final 1x1 stays fresh (``meanstd``)."""
    geo = ClipGeometry(duration=4.0, n_mels=64, n_fft=1024, hop_length=256)
    got = {r: nu.build_net("mobilefacenet", {"pretrained": "auscult-machine-v1", "readout": r}, geo)
           for r in ("gdc", "mean", "meanstd")}
    assert got["gdc"].pretrained_from["kept_fresh"] == ["gdconv.0.weight"]  # the 4 s map is not the 2 s crop's
    assert got["mean"].pretrained_from["kept_fresh"] == []
    assert got["meanstd"].pretrained_from["kept_fresh"] == ["project.0.weight"]
    shared = got["gdc"].state_dict()
    for k, v in got["mean"].state_dict().items():
        if not k.startswith("gdconv"):
            assert torch.equal(v, shared[k]), k
