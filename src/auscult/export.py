"""Export a model bundle for the edge: front-end + network in one ONNX graph, back-end state beside it.

``auscult export model.auscult --onnx out.onnx`` writes

* ``out.onnx`` -- input ``waveform`` ``[batch, samples]`` (float32, mono, at the bundle's sample rate;
  any length, equal within a batch). The log-mel front-end is the convolution-with-a-DFT-basis STFT
  (``FeatureConfig.stft_impl="conv"``), so the graph holds only standard ops (Pad, Conv, Mul,
  MatMul, Log...). Output:

  * ``autoencoder``: ``score`` ``[batch]`` -- the mean squared reconstruction error, final;
  * ``logmel_knn``: ``stats`` ``[batch, 2 * n_mels]`` -- per-band log-mel mean and spread; the
    score is the k-NN distance to the bank in ``out.npz`` (formula in ``out.json``).

* ``out.json`` -- machine, detector, sample rate, window/hop, threshold, expected false-alarm rate,
  calibration summary, input/output names, and how to turn the output into a decision;
* ``out.npz`` -- the back-end arrays (``bank``, ``mu``, ``sd`` for ``logmel_knn``; empty for the AE).

:class:`OnnxScorer` runs the exported files with onnxruntime and returns the same scores as the bundle
(:func:`export_onnx` checks it and reports the largest difference).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import CheckpointError, ConfigError

__all__ = ["export_onnx", "ExportResult", "OnnxScorer", "onnx_graph_module", "ONNX_OPSET"]

ONNX_OPSET = 17


def _conv_logmel(feature_cfg):
    from .features import LogMel

    return LogMel(feature_cfg.replace(stft_impl="conv")).eval()


def onnx_graph_module(detector: Any):
    """The ``torch.nn.Module`` that is exported for ``detector`` (waveform ``[B, T]`` in)."""
    import torch
    from torch import nn

    kind = detector.kind
    if kind == "autoencoder":
        method = detector.method

        class AEScore(nn.Module):
            def __init__(self):
                super().__init__()
                self.logmel = _conv_logmel(method.feature_cfg)
                self.net = method.net.to("cpu").eval()
                self.context = int(method.model_cfg["context"])

            def forward(self, waveform: torch.Tensor) -> torch.Tensor:
                x = self.logmel(waveform).transpose(1, 2)  # [B, F, M]
                n = x.shape[1]
                c = self.context
                vec = torch.cat([x[:, j:n - (c - 1 - j)] for j in range(c)], dim=2)  # [B, V, c*M]
                flat = vec.reshape(-1, vec.shape[-1])
                err = (self.net(flat) - flat) ** 2
                return err.reshape(waveform.shape[0], -1).mean(dim=1)

        return AEScore().eval()
    if kind == "logmel_knn":
        floor = float(detector.sd_floor_db)

        class Stats(nn.Module):
            def __init__(self):
                super().__init__()
                self.logmel = _conv_logmel(detector.feature_cfg)

            def forward(self, waveform: torch.Tensor) -> torch.Tensor:
                lm = self.logmel(waveform)  # [B, M, F]
                mean = lm.mean(dim=2)
                var = ((lm - mean[:, :, None]) ** 2).mean(dim=2)
                return torch.cat([mean, torch.sqrt(var + floor * floor)], dim=1)

        return Stats().eval()
    raise ConfigError(f"cannot export a {kind!r} detector to ONNX")


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how closely onnxruntime matched the bundle."""

    onnx: str
    sidecar_json: str
    sidecar_npz: str
    machine: str
    detector: str
    max_abs_diff: Optional[float] = None
    max_rel_diff: Optional[float] = None
    checked_clips: int = 0
    torch_scores: list = field(default_factory=list)
    onnx_scores: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_signals(sr: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Deterministic check clips when the user gives none: coloured noise with a few tones."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n) / sr
    out = []
    for i in range(2):
        x = np.cumsum(rng.standard_normal(n)) * 0.002 + rng.standard_normal(n) * 0.05
        x = x - x.mean()
        x += 0.1 * np.sin(2 * np.pi * (120 + 200 * i) * t) + 0.02 * np.sin(2 * np.pi * 3100 * t)
        out.append(x.astype(np.float32))
    return out


def export_onnx(bundle: Any, out: Union[str, Path], machine: Optional[str] = None,
                check_waves: Optional[Sequence[np.ndarray]] = None, opset: int = ONNX_OPSET) -> ExportResult:
    """Export one machine of ``bundle`` to ``out`` (+ ``.json``/``.npz`` beside it) and check it.

    ``check_waves`` (mono float32 at the bundle's rate; default two synthetic window-length clips)
    are scored by the bundle (torch) and by onnxruntime; the result reports the largest absolute
    and relative difference.
    """
    import torch

    name, mm = bundle.model(machine)
    det = mm.detector
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = onnx_graph_module(det)
    example = torch.from_numpy(np.stack(_check_signals(bundle.sample_rate, bundle.window_s)[:1]))
    out_name = "score" if det.kind == "autoencoder" else "stats"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(out), input_names=["waveform"], output_names=[out_name],
                          dynamic_axes={"waveform": {0: "batch", 1: "samples"}, out_name: {0: "batch"}},
                          opset_version=int(opset), dynamo=False)
    arrays: dict[str, np.ndarray] = {}
    post: dict[str, Any]
    if det.kind == "autoencoder":
        post = {"score": "output 'score' is the anomaly score"}
    else:
        arrays = {"bank": det.bank, "mu": det.mu, "sd": det.sd}
        post = {"score": "z = (stats - mu) / sd; zb = (bank - mu) / sd; d_i = sqrt(mean_j (z_j - zb_ij)^2); "
                         "score = mean of the k smallest d_i", "k": det.k}
    npz_path = out.with_suffix(".npz")
    np.savez(npz_path, **arrays)
    cal = {k: v for k, v in mm.calibration.items() if k not in ("scores", "band_scale")}
    meta = {"format": "auscult-onnx", "format_version": 1, "machine": name, "detector": det.kind,
            "sample_rate": bundle.sample_rate, "window_s": bundle.window_s, "hop_s": bundle.hop_s,
            "input": {"name": "waveform", "shape": ["batch", "samples"], "dtype": "float32",
                      "note": "mono, at sample_rate, equal lengths within a batch"},
            "output": out_name, "postprocess": post, "threshold": mm.threshold_value,
            "decision": "anomaly when score > threshold",
            "expected_false_alarm_rate": mm.expected_false_alarm_rate, "calibration": cal,
            "features": det.feature_config.replace(stft_impl="conv").to_dict(),
            "versions": bundle.versions, "opset": int(opset)}
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1, default=float), encoding="utf-8")
    res = ExportResult(onnx=str(out), sidecar_json=str(json_path), sidecar_npz=str(npz_path), machine=name,
                       detector=det.kind)
    waves = list(check_waves) if check_waves is not None else _check_signals(bundle.sample_rate, bundle.window_s)
    if waves:
        scorer = OnnxScorer(out, threads=1)
        ref = np.asarray(det.score_waves(waves), dtype=np.float64)
        got = np.asarray([scorer.score(w)[0] for w in waves], dtype=np.float64)
        diff = np.abs(ref - got)
        res.max_abs_diff = float(diff.max())
        res.max_rel_diff = float((diff / np.maximum(np.abs(ref), 1e-12)).max())
        res.checked_clips = len(waves)
        res.torch_scores, res.onnx_scores = ref.tolist(), got.tolist()
    return res


class OnnxScorer:
    """Scores waveforms with an exported graph + its sidecar files (onnxruntime, CPU).

    Args:
        path: the ``.onnx`` file (``.json``/``.npz`` beside it).
        threads: onnxruntime intra-op threads (1 = one core).
    """

    def __init__(self, path: Union[str, Path], threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        try:
            self.meta = json.loads(self.path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path.with_suffix('.json')}: missing or unreadable sidecar ({exc}); "
                                  f"re-run 'auscult export'") from None
        with np.load(self.path.with_suffix(".npz"), allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.threshold = float(self.meta["threshold"])

    def raw(self, waves: np.ndarray) -> np.ndarray:
        """The graph's output for ``[B, T]`` (or ``[T]``) float32 waveforms."""
        x = np.asarray(waves, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        return self.session.run(None, {"waveform": x})[0]

    def score(self, waves: np.ndarray) -> np.ndarray:
        """Anomaly scores ``[B]``."""
        out = self.raw(waves)
        if self.meta["detector"] == "autoencoder":
            return out.astype(np.float64)
        from .monitor.detectors import knn_score

        a = self.arrays
        return knn_score(out.astype(np.float64), a["bank"], a["mu"], a["sd"], int(self.meta["postprocess"]["k"]))

    def decide(self, waves: np.ndarray) -> np.ndarray:
        """``score > threshold`` per waveform."""
        return self.score(waves) > self.threshold
