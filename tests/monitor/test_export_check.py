"""``auscult export --check FILE``: a multi-channel check file reaches the exported graph as the
bundle's machine reads it (its channel policy), not as the mean of the channels."""

from __future__ import annotations

import numpy as np
import pytest

from monitor_testlib import SR, render


@pytest.mark.parametrize("policy", ["far", "near", None])
def test_export_check_files_follow_the_models_channel_policy(policy, knn_fit, tmp_path, monkeypatch):
    import soundfile as sf
    from typer.testing import CliRunner

    import auscult.monitor.export as export_mod
    from auscult.cli import app
    from auscult.monitor.bundle import Bundle, MachineModel, load_bundle, save_bundle

    b = load_bundle(knn_fit[2])
    mm = b.models["fan"]
    info = {**mm.fit_info, **({"channel": policy} if policy else {})}
    path = save_bundle(tmp_path / "b.auscult", Bundle({"fan": MachineModel(mm.method, mm.threshold, mm.calibration,
                                                                          info)}, b.sample_rate, b.window_s, b.hop_s))
    near, far = render(830, duration=2.0), render(831, duration=2.0, anomaly="rub")
    sf.write(tmp_path / "two.wav", np.stack([near, far], axis=1), SR, subtype="FLOAT")
    seen = {}

    def capture(bundle, onnx, machine=None, check_waves=None):
        seen["waves"] = check_waves
        raise SystemExit(0)

    monkeypatch.setattr(export_mod, "export_onnx", capture)
    CliRunner().invoke(app, ["export", str(path), "--onnx", str(tmp_path / "o.onnx"), "--check",
                             str(tmp_path / "two.wav")])
    (got,) = seen["waves"]
    want = {"far": far, "near": near, None: (near + far) / 2}[policy]
    np.testing.assert_allclose(got, want, atol=1e-6)
