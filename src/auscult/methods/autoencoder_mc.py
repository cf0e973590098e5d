"""A noise-aware autoencoder for DCASE 2026 two-microphone clips (``method: autoencoder_mc``).

DCASE 2026 Task 2 clips are stereo: channel 0 a near microphone, channel 1 a far microphone that
hears the same machine through more background (see docs/data.md). The organisers' baseline reads
channel 0 only. This method is the same network and features as the baseline
(:mod:`auscult.methods.autoencoder`: dense AE on 5 stacked 128-band log-mel frames), trained on
**both** microphones (multi-condition training): every training clip contributes its near and its
far channel as two examples of the machine's normal sound. It needs both channels only to train;
it scores **one** microphone:

* a two-channel clip (``audio.channel: both``) is scored on ``mics.score`` (``near`` or ``far``);
* a single-channel waveform (``audio.channel: near``/``far``, a mono recording, a monitor window) is
  scored as given -- so a plant with only a far microphone can use a model trained where both exist.

With single-channel training clips (``audio.channel`` other than ``both``) it is exactly the
autoencoder baseline (what the registry walk and ``auscult fit`` on mono folders see).

Recipe keys: the autoencoder's (``model``, ``train``, ``score``), plus::

    mics: {train: both, score: near}   # train: both | near | far (which channels of a 2-channel clip
                                       # train); score: near | far (which channel of a 2-channel clip scores)

``model.normalize: true`` standardises every mel band with the statistics of all training examples
(both microphones together).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.clip import Clip
from ..errors import ConfigError
from .autoencoder import MODEL_KEYS, SCORE_KEYS, TRAIN_KEYS, AutoencoderMethod, _Features
from .base import METHODS, FitContext, merge_section

MICS_KEYS = {"train": "both", "score": "near"}
_CHANNEL = {"near": 0, "far": 1}


@METHODS.register("autoencoder_mc",
                  defaults={"model": MODEL_KEYS, "train": TRAIN_KEYS, "score": SCORE_KEYS, "mics": MICS_KEYS},
                  description="DCASE 2026: the baseline AE trained on near and far mics (both in training only); "
                              "scores one mic")
class AutoencoderMultiMic(AutoencoderMethod):
    """The autoencoder baseline trained on both microphones of two-channel clips (module docstring)."""

    name = "autoencoder_mc"

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        self.mics_cfg = merge_section(MICS_KEYS, config.get("mics"), "mics")
        if self.mics_cfg["train"] not in ("both", "near", "far"):
            raise ConfigError(f"autoencoder_mc: mics.train must be both, near or far, got {self.mics_cfg['train']!r}")
        if self.mics_cfg["score"] not in _CHANNEL:
            raise ConfigError(f"autoencoder_mc: mics.score must be near or far, got {self.mics_cfg['score']!r}")
        self._training = False

    @property
    def audio_config(self) -> dict[str, Any]:
        """The audio a *single-microphone* source must give this method: the recipe's section with
        ``channel: both`` replaced by ``mics.score`` -- what the monitor's waveform sources (bundles,
        ``auscult fit`` windows, the service) build, since they hand over one channel. The research
        door reads the recipe's own ``audio`` section (both mics for training)."""
        cfg = dict(super().audio_config)
        if cfg.get("channel") == "both":
            cfg["channel"] = self.mics_cfg["score"]
        return cfg

    def _channels(self, wave: np.ndarray, clip: Clip) -> list[np.ndarray]:
        """The single-microphone signals one loaded clip contributes (training or scoring)."""
        w = np.asarray(wave)
        if w.ndim == 1:
            return [w]
        if w.ndim != 2 or w.shape[0] != 2:
            raise ConfigError(f"{getattr(clip, 'path', clip)}: autoencoder_mc takes mono or [2, T] (near, far) "
                              f"waveforms, got shape {w.shape}")
        if self._training:
            which = self.mics_cfg["train"]
            return [w[0], w[1]] if which == "both" else [w[_CHANNEL[which]]]
        return [w[_CHANNEL[self.mics_cfg["score"]]]]

    def features(self, clips: Sequence[Clip], audio) -> _Features:
        """Time-major log-mel per (clip, microphone); ``clip_of`` maps each matrix to its clip."""
        import torch

        fe = self._logmel()
        bs = int(self.score_cfg["batch_clips"])
        mats: list = []
        owners: list[int] = []
        with torch.no_grad():
            for i in range(0, len(clips), bs):
                part = clips[i:i + bs]
                sigs: list[np.ndarray] = []
                for j, (c, w) in enumerate(zip(part, audio.load_many(part))):
                    for s in self._channels(w, c):
                        sigs.append(np.ascontiguousarray(s, dtype=np.float32))
                        owners.append(i + j)
                if sigs and len({s.shape[0] for s in sigs}) == 1:
                    lm = fe(torch.from_numpy(np.stack(sigs)))
                    mats.extend(m.transpose(0, 1).contiguous() for m in lm)
                else:
                    mats.extend(fe(torch.from_numpy(s)[None])[0].transpose(0, 1).contiguous() for s in sigs)
        if self.norm is not None:
            mean, std = self.norm
            mats = [(m - mean) / std for m in mats]
        feats = _Features(mats, self.model_cfg["context"])
        feats.clip_of = owners
        return feats

    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio) -> "AutoencoderMultiMic":
        self._training = True
        try:
            return super().fit(train, val, audio)
        finally:
            self._training = False

    def _fit_backend(self, clips: list[Clip], audio, device) -> None:
        from ..backends import BACKENDS, BackendMeta

        feats = self.features(clips, audio)  # both microphones' residual blocks when training on both
        blocks = self._residuals(feats, device).reshape(-1, self.feature_cfg.n_mels).numpy()
        ctx = self.model_cfg["context"]
        per_mat = np.asarray([n - ctx + 1 for n in feats.lengths]) * ctx
        rep = np.repeat(np.asarray(feats.clip_of, dtype=np.int64), per_mat)
        meta = BackendMeta.from_clips([clips[i] for i in rep])
        be = BACKENDS.build("selective_mahalanobis", shrinkage=self.score_cfg["shrinkage"], center=False,
                            group_by=self.score_cfg["group_by"])
        self.backend = be.fit(blocks, meta)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["mics"] = dict(self.mics_cfg)
        return state
