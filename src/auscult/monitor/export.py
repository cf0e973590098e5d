"""Export a model bundle for the edge: the method's scoring module in one ONNX graph, back-end state beside it.

``auscult export model.auscult --onnx out.onnx`` works for every method that declares the
``export`` capability; it never special-cases a method: it exports the module the method returns
from :meth:`~auscult.methods.Method.scoring_graph` (front-end with a convolution STFT -- standard
ONNX ops only --, network and, where it fits in the graph, the score itself) and writes

* ``out.onnx`` -- input ``waveform`` ``[batch, samples]`` (float32, mono, at the bundle's sample rate;
  any length for methods that take any, else exactly ``input.n_samples``; the scorer below tiles or
  crops as the method does). Output ``score`` ``[batch]``, or ``embedding`` ``[batch, D]``;
* ``out.json`` -- machine, method, unit, sample rate, window/hop, the audio length policy, threshold,
  expected false-alarm rate, calibration summary, and for ``embedding`` outputs the back-ends that
  turn the embedding into the score (their state packed with :mod:`auscult.fileio`'s packer);
* ``out.npz`` -- the back-ends' arrays (read with ``allow_pickle=False``).

:class:`OnnxScorer` runs the exported files with onnxruntime and returns the same scores as the
bundle (:func:`export_onnx` checks it and reports the largest difference).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import CheckpointError

__all__ = ["export_onnx", "ExportResult", "OnnxScorer", "ONNX_OPSET", "EXPORT_FORMAT"]

ONNX_OPSET = 17
EXPORT_FORMAT = "auscult-onnx"
EXPORT_FORMAT_VERSION = 2


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how closely onnxruntime matched the bundle."""

    onnx: str
    sidecar_json: str
    sidecar_npz: str
    machine: str
    method: str
    output: str
    max_abs_diff: Optional[float] = None
    max_rel_diff: Optional[float] = None
    checked_clips: int = 0
    torch_scores: list = field(default_factory=list)
    onnx_scores: list = field(default_factory=list)

    @property
    def detector(self) -> str:
        """The method's name (the key of the first export format)."""
        return self.method

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
    and relative difference. A method without the ``export`` capability raises
    :class:`~auscult.errors.CapabilityError` naming the methods that have it.
    """
    import torch

    from ..audio import apply_length
    from ..fileio import pack_tree

    name, mm = bundle.model(machine)
    if not mm.method.supports("export"):
        raise mm.method.unsupported("export", "export to ONNX")
    graph = mm.scoring_graph()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    audio = _length_policy(mm.method.audio_config, bundle.sample_rate)
    example = np.stack(_check_signals(bundle.sample_rate, bundle.window_s)[:1])
    example = torch.from_numpy(np.stack([_fit_length(x, audio, apply_length) for x in example]))
    axes = {"waveform": {0: "batch"} if graph.n_samples else {0: "batch", 1: "samples"}, graph.output: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module.eval(), (example,), str(out), input_names=["waveform"],
                          output_names=[graph.output], dynamic_axes=axes, opset_version=int(opset), dynamo=False)
    arrays: dict[str, np.ndarray] = {}
    backends = pack_tree(graph.backends, arrays)
    npz_path = out.with_suffix(".npz")
    np.savez(npz_path, **arrays)
    cal = {k: v for k, v in mm.calibration.items() if k not in ("scores", "band_scale", "tail_loc", "tail_scale")}
    meta = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "machine": name, "method": mm.kind,
            "unit": dict(mm.unit), "sample_rate": bundle.sample_rate, "window_s": bundle.window_s,
            "hop_s": bundle.hop_s,
            "input": {"name": "waveform", "shape": ["batch", graph.n_samples or "samples"], "dtype": "float32",
                      "n_samples": graph.n_samples, "audio": audio,
                      "note": "mono, at sample_rate, equal lengths within a batch"
                              + ("; exactly n_samples (tile or crop as 'audio' says)" if graph.n_samples else "")},
            "output": graph.output, "threshold": mm.threshold_value, "decision": "anomaly when score > threshold",
            "postprocess": ("output 'score' is the anomaly score" if graph.output == "score" else
                            "score = mean over 'backends' of backend(embedding[:, columns]) for a clip of 'unit'"),
            "backends": backends, "expected_false_alarm_rate": mm.expected_false_alarm_rate, "calibration": cal,
            "features": mm.feature_config.replace(stft_impl="conv").to_dict(),
            "versions": bundle.versions, "opset": int(opset)}
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1, default=float), encoding="utf-8")
    res = ExportResult(onnx=str(out), sidecar_json=str(json_path), sidecar_npz=str(npz_path), machine=name,
                       method=mm.kind, output=graph.output)
    waves = list(check_waves) if check_waves is not None else _check_signals(bundle.sample_rate, bundle.window_s)
    if waves:
        scorer = OnnxScorer(out, threads=1)
        ref = np.asarray(mm.score_waves(waves), dtype=np.float64)
        got = np.asarray([scorer.score(w)[0] for w in waves], dtype=np.float64)
        diff = np.abs(ref - got)
        res.max_abs_diff = float(diff.max())
        res.max_rel_diff = float((diff / np.maximum(np.abs(ref), 1e-12)).max())
        res.checked_clips = len(waves)
        res.torch_scores, res.onnx_scores = ref.tolist(), got.tolist()
    return res


def _length_policy(audio: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    from ..audio import AudioConfig

    cfg = AudioConfig.from_dict({**dict(audio or {}), "sample_rate": int(sample_rate)})
    return {"length": cfg.length, "duration": cfg.duration, "offset": cfg.offset, "sample_rate": cfg.sample_rate}


def _fit_length(x: np.ndarray, audio: dict[str, Any], apply_length: Any) -> np.ndarray:
    from ..audio import AudioConfig

    return apply_length(np.asarray(x, dtype=np.float32), AudioConfig.from_dict(audio))


class OnnxScorer:
    """Scores waveforms with an exported graph + its sidecar files (onnxruntime, CPU).

    Args:
        path: the ``.onnx`` file (``.json``/``.npz`` beside it).
        threads: onnxruntime intra-op threads (1 = one core).
    """

    def __init__(self, path: Union[str, Path], threads: int = 1):
        import onnxruntime as ort

        from ..fileio import read_arrays, unpack_tree

        self.path = Path(path)
        try:
            self.meta = json.loads(self.path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path.with_suffix('.json')}: missing or unreadable sidecar ({exc}); "
                                  f"re-run 'auscult export'") from None
        if self.meta.get("format") != EXPORT_FORMAT or int(self.meta.get("format_version", 0)) > EXPORT_FORMAT_VERSION:
            raise CheckpointError(f"{self.path.with_suffix('.json')}: not an auscult export of a format this auscult "
                                  f"reads (format {self.meta.get('format')!r} {self.meta.get('format_version')!r}); "
                                  f"re-run 'auscult export'")
        self.arrays = read_arrays(self.path.with_suffix(".npz"))
        self.backends = [(_backend(b["state"]), tuple(b["columns"]))
                         for b in unpack_tree(self.meta.get("backends") or [], self.arrays)]
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.threshold = float(self.meta["threshold"])

    def _prepare(self, waves: np.ndarray) -> np.ndarray:
        x = np.asarray(waves, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if self.meta["input"].get("n_samples"):
            from ..audio import apply_length

            x = np.stack([_fit_length(w, self.meta["input"]["audio"], apply_length) for w in x])
        return x

    def raw(self, waves: np.ndarray) -> np.ndarray:
        """The graph's output for ``[B, T]`` (or ``[T]``) float32 waveforms."""
        return self.session.run(None, {"waveform": self._prepare(waves)})[0]

    def score(self, waves: np.ndarray) -> np.ndarray:
        """Anomaly scores ``[B]``."""
        out = self.raw(waves)
        if self.meta["output"] == "score":
            return out.astype(np.float64)
        from ..backends import BackendMeta

        emb = out.astype(np.float64)
        unit = self.meta.get("unit") or {}
        n = emb.shape[0]
        meta = BackendMeta(n=n, machine=[unit.get("machine")] * n, section=[unit.get("section", "00")] * n,
                           domain=[None] * n)
        total = np.zeros(n, dtype=np.float64)
        for be, (a, b) in self.backends:
            total += np.asarray(be.score(emb[:, a:b], meta), dtype=np.float64)
        return total / max(1, len(self.backends))

    def decide(self, waves: np.ndarray) -> np.ndarray:
        """``score > threshold`` per waveform."""
        return self.score(waves) > self.threshold


def _backend(state: dict[str, Any]) -> Any:
    from ..methods.base import backend_from_state

    return backend_from_state(state)
