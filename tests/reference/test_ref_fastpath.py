"""The whole-model OS-SCL parity tests once more, through auscult's default fast paths, in every run.

``test_ref_osscl_model``'s eval and anomaly-score tests run here with the reference hook set to
:func:`auscult.engine.fastpath.prepare_fast` (what ``AUSCULT_REFERENCE_PREPARE=
auscult.engine.fastpath:prepare_fast`` does for the whole directory): scoring through the inference
copy every method scores with (batch norm folded, channels-last, the TFgram branch's channels-last
eval path). Same assertions, same bounds (the fixture README's).

``test_training_step`` (float32 and float64) runs here too, as the trainer runs it by default (fused
PReLU backward, the TFgram training path, NCHW layout), with exactly the README bounds. The opt-in
channels-last training layout has its own module (``test_ref_fastpath_train_cl.py``): it does not
meet the README bound on the head-side arrays, which is why it is opt-in.
"""

from __future__ import annotations

import pytest

from auscult.engine import fastpath
from test_ref_osscl_model import (  # noqa: F401  (the eval tests are collected here with this module's ``prepare``)
    SHALLOW,
    build,
    f32_bound,
    inputs,
    test_anomaly_score_float32,
    test_full_model_eval,
    test_training_step,
    train_step,
)

pytestmark = pytest.mark.xdist_group("reference")


@pytest.fixture(scope="module")
def prepare():
    return fastpath.prepare_fast


def test_prepare_fast_is_what_the_methods_run():
    """The hook gives the scoring copy ``OSSCL._scorer`` builds and the trainer's layout."""
    import torch

    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    m = build_method("osscl", load_recipe("dcase2020/osscl_tfstgram"), FitContext(seed=0, quiet=True))
    m.n_samples, m.classes = 160000, ["a/00", "b/00"]
    m.model = m._build_model().eval()
    scorer, fast = m._scorer(), fastpath.prepare_fast(m.model, "osscl_model")
    assert type(scorer) is type(fast) and scorer is not m.model
    assert [type(x) for x in scorer.modules()] == [type(x) for x in fast.modules()]
    for (ka, va), (kb, vb) in zip(scorer.state_dict().items(), fast.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    conv = fast.net.mfn.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    train = m._build_model().train()
    assert fastpath.prepare_fast(train, "osscl_model_train") is train
    assert train.net.mfn.stem[0].weight.is_contiguous()  # the default training layout: NCHW
    with fastpath.overridden(train_channels_last=True):  # the opt-in layout
        assert fastpath.prepare_fast(train, "osscl_model_train") is train
    w = train.net.mfn.stem[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
