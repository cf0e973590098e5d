"""A small CNN clip encoder, pre-trained elsewhere and frozen here (see :mod:`.pretrain`).

Saved as two files side by side, nothing executable in either:

* ``<name>.json`` -- ``format: "auscult-encoder"``, ``format_version``, the feature config, the net
  settings, the crop and window hop, and how it was trained (the card's facts);
* ``<name>.npz`` -- the net's ``state_dict`` as plain arrays (float16 or float32), loaded with
  ``allow_pickle=False``.

Embedding a clip: its log-mel spectrogram (mean removed over the whole clip, so the recording
gain does not matter), cut into windows of the training crop length every ``window_hop`` frames
(one window for a clip no longer than the crop: it is tiled), each window through the net, each
embedding L2-normalised, and the mean over the windows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from .base import ENCODERS, ClipEncoder

__all__ = ["CNNEncoder", "build_net", "ENCODER_FORMAT", "ENCODER_FORMAT_VERSION", "save_encoder", "PRETRAINED",
           "DEFAULT_ENCODER", "pretrained_path"]

ENCODER_FORMAT = "auscult-encoder"
ENCODER_FORMAT_VERSION = 1

#: MobileFaceNet stages of the small encoder: (expansion, channels, repeats, stride)
SMALL_SETTING = ((2, 32, 2, 2), (2, 64, 2, 2), (2, 96, 2, 2))


def build_net(n_mels: int, crop_frames: int, emb_dim: int = 128, width: int = 128,
              setting: Sequence[Sequence[int]] = SMALL_SETTING) -> torch.nn.Module:
    """The encoder network: a narrow MobileFaceNet (ReLU) for ``[B, 1, n_mels, crop_frames]``."""
    from ..nets.mobilefacenet import MobileFaceNet

    return MobileFaceNet(input_shape=(1, n_mels, crop_frames), emb_dim=emb_dim, activation="relu",
                         setting=[tuple(s) for s in setting], width=width)


#: encoders shipped inside the package (``auscult/encoders/weights/<name>.json + .npz``, card in
#: ``<name>.md``): a name here is accepted wherever encoder weights are asked for
PRETRAINED: tuple[str, ...] = ("auscult-machine-v1", "auscult-machine-v2")
#: the shipped encoder used where none is named (``encoder_knn``); saved models always name theirs
DEFAULT_ENCODER = "auscult-machine-v2"


def pretrained_path(name: str) -> Path:
    """The JSON file of a shipped encoder (no network: it is package data)."""
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pre-trained encoder {name!r}; shipped: {', '.join(PRETRAINED)} (or give the path "
                          f"of an encoder's .json)")
    return Path(__file__).resolve().parent / "weights" / f"{name}.json"


def _paths(weights: Union[str, Path]) -> tuple[Path, Path]:
    if isinstance(weights, str) and weights in PRETRAINED:
        weights = pretrained_path(weights)
    p = Path(weights)
    stem = p.with_suffix("") if p.suffix in (".json", ".npz") else p
    return stem.with_suffix(".json"), stem.with_suffix(".npz")


def save_encoder(path: Union[str, Path], net: torch.nn.Module, config: dict[str, Any], dtype: str = "float16") -> Path:
    """Write ``<path>.json`` and ``<path>.npz`` (atomically each); returns the JSON path."""
    from ..fileio import atomic_write

    js, npz = _paths(path)
    js.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, v in net.state_dict().items():
        a = v.detach().cpu().numpy()
        arrays[k] = a.astype(dtype) if a.dtype.kind == "f" else a
    atomic_write(npz, lambda fh: np.savez(fh, **arrays))
    head = {"format": ENCODER_FORMAT, "format_version": ENCODER_FORMAT_VERSION, **config}
    atomic_write(js, lambda fh: fh.write(json.dumps(head, indent=1, sort_keys=True).encode()))
    return js


@ENCODERS.register("cnn", description="a frozen CNN pre-trained on simulated machines (mean of window embeddings)")
class CNNEncoder(ClipEncoder):
    """Load a pre-trained encoder written by :func:`save_encoder`.

    Args:
        weights: path of the ``.json`` (or ``.npz``, or the common stem), or the name of a shipped
            encoder (:data:`PRETRAINED`, e.g. ``auscult-machine-v1``).
        window_hop: frames between windows of long clips (default: half a crop).
    """

    name = "cnn"

    def __init__(self, weights: Union[str, Path], window_hop: Optional[int] = None):
        js, npz = _paths(weights)
        if not js.is_file() or not npz.is_file():
            raise CheckpointError(f"{js.with_suffix('')}: encoder files not found (need both {js.name} and {npz.name}); "
                                  f"train one with python -m auscult.encoders.pretrain")
        try:
            head = json.loads(js.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{js}: unreadable encoder header ({exc}); re-export the encoder") from None
        if head.get("format") != ENCODER_FORMAT or not isinstance(head.get("format_version"), int):
            raise CheckpointError(f"{js}: not an auscult encoder (format={head.get('format')!r})")
        if head["format_version"] > ENCODER_FORMAT_VERSION:
            raise CheckpointError(f"{js}: encoder format {head['format_version']} is newer than this auscult reads "
                                  f"({ENCODER_FORMAT_VERSION}); upgrade auscult")
        super().__init__(head["features"])
        self.weights = str(weights) if isinstance(weights, str) and weights in PRETRAINED else str(js)
        self.head = head
        self.crop = int(head["crop_frames"])
        self.window_hop = int(window_hop or head.get("window_hop") or max(1, self.crop // 2))
        if self.window_hop < 1:
            raise ConfigError(f"cnn encoder: window_hop must be >= 1, got {window_hop!r}")
        net = build_net(self.feature_cfg.n_mels, self.crop, **head["net"])
        try:
            with np.load(npz, allow_pickle=False) as z:
                state = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float32 if z[k].dtype.kind == "f" else z[k].dtype))
                         for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{npz}: unreadable encoder weights ({exc}); re-export the encoder") from None
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{npz}: weights do not fit the net in {js.name} (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]})")
        self.net = net.eval()
        from ..features import LogMel

        self.fe = LogMel(self.feature_cfg)

    @property
    def dim(self) -> int:
        return int(self.head["net"].get("emb_dim", 128))

    def windows(self, lm: torch.Tensor) -> torch.Tensor:
        """``[B, M, F]`` log-mels -> ``[B, W, M, crop]`` windows (tiling clips shorter than a crop)."""
        f = lm.shape[-1]
        if f < self.crop:
            lm = lm.repeat(1, 1, -(-self.crop // f))[..., : self.crop]
            f = self.crop
        starts = list(range(0, f - self.crop + 1, self.window_hop))
        if starts[-1] + self.crop < f:
            starts.append(f - self.crop)
        return torch.stack([lm[..., s:s + self.crop] for s in starts], dim=1)

    def _embed_batch(self, x) -> np.ndarray:
        lm = self.fe(x)
        lm = lm - lm.mean(dim=(1, 2), keepdim=True)
        w = self.windows(lm)  # [B, W, M, crop]
        b, n = w.shape[:2]
        emb = self.net(w.reshape(b * n, 1, *w.shape[2:]))
        emb = torch.nn.functional.normalize(emb, dim=1).reshape(b, n, -1).mean(1)
        return emb.numpy()

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "window_hop": self.window_hop}
