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

    mics: {train: both, score: near, norm: shared, backend: shared}
    # train:   both | near | far  -- which channels of a 2-channel clip train
    # score:   near | far         -- which microphone is scored: the channel taken from a 2-channel clip,
    #                                and the microphone a single-channel recording comes from
    # norm:    shared | per_mic   -- model.normalize statistics over both microphones' frames (shared) or
    #                                one set per microphone (per_mic): near-mic audio is standardised with
    #                                the near mic's mean/std, far-mic audio with the far mic's
    # backend: shared | per_mic   -- score.kind: mahalanobis: one selective-Mahalanobis back-end on both
    #                                microphones' residuals (shared) or one per microphone (per_mic), each
    #                                fitted on that microphone's training residuals only

``per_mic`` is the noise-aware part: the far microphone hears more background and reverberation, so
its mel bands have other levels and its residuals another spread than the near one's; per-mic
statistics let one network (trained on both) be read on each microphone against that microphone's
own normal sound. Both need two-channel training clips (``audio.channel: both``, ``mics.train:
both``), and the far microphone's statistics come from the training clips only -- at test time one
microphone is enough. ``mics.score`` selects the statistics; :meth:`AutoencoderMultiMic.select_mic`
switches a fitted model to the other microphone (the same network, the other mic's statistics).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.clip import Clip
from ..errors import ConfigError
from .autoencoder import MODEL_KEYS, SCORE_KEYS, TRAIN_KEYS, AutoencoderMethod, _Features
from .base import METHODS, FitContext, merge_section

MICS_KEYS = {"train": "both", "score": "near", "norm": "shared", "backend": "shared"}
_CHANNEL = {"near": 0, "far": 1}
_MIC = {0: "near", 1: "far"}


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
        for k in ("norm", "backend"):
            if self.mics_cfg[k] not in ("shared", "per_mic"):
                raise ConfigError(f"autoencoder_mc: mics.{k} must be shared or per_mic, got {self.mics_cfg[k]!r}")
        if self.mics_cfg["norm"] == "per_mic" and not self.model_cfg["normalize"]:
            raise ConfigError("autoencoder_mc: mics.norm: per_mic standardises each microphone's mel bands, which "
                              "needs model.normalize: true (or set mics.norm: shared)")
        if self.mics_cfg["backend"] == "per_mic" and self.score_cfg["kind"] != "mahalanobis":
            raise ConfigError("autoencoder_mc: mics.backend: per_mic fits one Mahalanobis back-end per microphone, "
                              "which needs score.kind: mahalanobis (or set mics.backend: shared)")
        if "per_mic" in (self.mics_cfg["norm"], self.mics_cfg["backend"]) and self.mics_cfg["train"] != "both":
            raise ConfigError(f"autoencoder_mc: per-microphone statistics (mics.norm / mics.backend: per_mic) are "
                              f"fitted on both microphones' training audio; mics.train is "
                              f"{self.mics_cfg['train']!r}, set it to both")
        self._training = False
        self._mic_norms: dict[int, tuple] | None = None  # mics.norm: per_mic -> {channel: (mean, std)}
        self._mic_backends: dict[int, Any] | None = None  # mics.backend: per_mic -> {channel: back-end}

    @property
    def per_mic(self) -> bool:
        return "per_mic" in (self.mics_cfg["norm"], self.mics_cfg["backend"])

    def select_mic(self, mic: str) -> "AutoencoderMultiMic":
        """Score microphone ``mic`` (``near`` / ``far``) from now on: the channel taken from a two-channel
        clip and, with per-microphone statistics, that microphone's standardisation and back-end. The
        network is not touched."""
        if mic not in _CHANNEL:
            raise ConfigError(f"autoencoder_mc: a microphone is near or far, got {mic!r}")
        self.mics_cfg["score"] = mic
        ch = _CHANNEL[mic]
        if self._mic_norms is not None:
            self.norm = self._mic_norms[ch]
        if self._mic_backends is not None:
            self.backend = self._mic_backends[ch]
        return self

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

    def _channels(self, wave: np.ndarray, clip: Clip) -> list[tuple[int, np.ndarray]]:
        """The single-microphone signals one loaded clip contributes (training or scoring), each with its
        microphone (0 near, 1 far; a single-channel wave is the scored microphone's)."""
        w = np.asarray(wave)
        if w.ndim == 1:
            if self._training and self.per_mic:
                raise ConfigError(f"{getattr(clip, 'path', clip)}: autoencoder_mc with per-microphone statistics "
                                  f"(mics.norm / mics.backend: per_mic) trains on two-channel clips (near, far), "
                                  f"got a single-channel waveform; set audio.channel: both (DCASE 2026 clips) or "
                                  f"mics.norm / mics.backend: shared")
            return [(_CHANNEL[self.mics_cfg["score"]], w)]
        if w.ndim != 2 or w.shape[0] != 2:
            raise ConfigError(f"{getattr(clip, 'path', clip)}: autoencoder_mc takes mono or [2, T] (near, far) "
                              f"waveforms, got shape {w.shape}")
        if self._training:
            which = self.mics_cfg["train"]
            return [(0, w[0]), (1, w[1])] if which == "both" else [(_CHANNEL[which], w[_CHANNEL[which]])]
        ch = _CHANNEL[self.mics_cfg["score"]]
        return [(ch, w[ch])]

    def features(self, clips: Sequence[Clip], audio) -> _Features:
        """Time-major log-mel per (clip, microphone); ``clip_of`` maps each matrix to its clip."""
        import torch

        fe = self._logmel()
        bs = int(self.score_cfg["batch_clips"])
        mats: list = []
        owners: list[int] = []
        mics: list[int] = []
        samples: list[int] = []
        with torch.no_grad():
            for i in range(0, len(clips), bs):
                part = clips[i:i + bs]
                sigs: list[np.ndarray] = []
                for j, (c, w) in enumerate(zip(part, audio.load_many(part))):
                    for ch, s in self._channels(w, c):
                        sigs.append(np.ascontiguousarray(s, dtype=np.float32))
                        owners.append(i + j)
                        mics.append(ch)
                        samples.append(int(s.shape[0]))
                if sigs and len({s.shape[0] for s in sigs}) == 1:
                    lm = fe(torch.from_numpy(np.stack(sigs)))
                    mats.extend(m.transpose(0, 1).contiguous() for m in lm)
                else:
                    mats.extend(fe(torch.from_numpy(s)[None])[0].transpose(0, 1).contiguous() for s in sigs)
        if self._mic_norms is not None:  # each microphone standardised with its own statistics
            mats = [(m - self._mic_norms[ch][0]) / self._mic_norms[ch][1] for m, ch in zip(mats, mics)]
        elif self.norm is not None:
            mean, std = self.norm
            mats = [(m - mean) / std for m in mats]
        feats = _Features(mats, self.model_cfg["context"])
        feats.clip_of = owners
        feats.mic_of = mics
        feats.samples = samples
        return feats

    def _reference_rows(self, feats: _Features) -> list[int]:
        """The explanation's reference learns from the scored microphone's training audio (``mics.score``),
        the one a map is drawn for; all matrices when training saw only the other one."""
        ch = _CHANNEL[self.mics_cfg["score"]]
        rows = [i for i, m in enumerate(feats.mic_of) if m == ch]
        return rows or list(range(len(feats.lengths)))

    def _fit_norm(self, feats: _Features) -> None:
        if self.mics_cfg["norm"] != "per_mic":
            return super()._fit_norm(feats)
        import torch

        frame_mic = torch.as_tensor(np.repeat(np.asarray(feats.mic_of, dtype=np.int64), feats.lengths))
        norms = {}
        for ch in (0, 1):
            d = feats.data[frame_mic == ch].double()
            if d.shape[0] < 2:
                raise ConfigError(f"autoencoder_mc[{self.context.group}]: mics.norm: per_mic needs training audio "
                                  f"of both microphones; the {_MIC[ch]} microphone gave {d.shape[0]} frames")
            norms[ch] = (d.mean(0).float(), d.std(0).clamp_min(1e-3).float())
        mean = torch.stack([norms[0][0], norms[1][0]])[frame_mic]
        std = torch.stack([norms[0][1], norms[1][1]])[frame_mic]
        feats.data = ((feats.data - mean) / std).contiguous()
        self._mic_norms = norms
        self.norm = norms[_CHANNEL[self.mics_cfg["score"]]]  # what explain / export / a single mic use

    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio) -> "AutoencoderMultiMic":
        self._training = True
        self._mic_norms = None
        self._mic_backends = None
        try:
            return super().fit(train, val, audio)
        finally:
            self._training = False

    def refit_backend(self, clips: Sequence[Clip], audio, backend: str) -> "AutoencoderMultiMic":
        """Fit the Mahalanobis back-end again on ``clips`` (the training normals) with ``mics.backend =
        backend``, keeping the trained network and standardisation (the back-end is fitted after
        training, so this equals a fit with that setting). For comparing the two back-ends on one network."""
        if backend not in ("shared", "per_mic"):
            raise ConfigError(f"autoencoder_mc: mics.backend must be shared or per_mic, got {backend!r}")
        if self.net is None:
            raise ConfigError("autoencoder_mc: fit() before refit_backend()")
        self.mics_cfg["backend"] = backend
        self._training = True
        try:
            from . import _neural as nu

            with nu.torch_threads(self.train_cfg["threads"]):
                self._fit_backend(list(clips), audio, next(self.net.parameters()).device)
        finally:
            self._training = False
        return self

    def _fit_backend(self, clips: list[Clip], audio, device) -> None:
        from ..backends import BACKENDS, BackendMeta

        feats = self.features(clips, audio)  # both microphones' residual blocks when training on both
        blocks = self._residuals(feats, device).reshape(-1, self.feature_cfg.n_mels).numpy()
        ctx = self.model_cfg["context"]
        per_mat = np.asarray([n - ctx + 1 for n in feats.lengths]) * ctx
        rep = np.repeat(np.asarray(feats.clip_of, dtype=np.int64), per_mat)
        mic = np.repeat(np.asarray(feats.mic_of, dtype=np.int64), per_mat)

        def fitted(rows):
            meta = BackendMeta.from_clips([clips[i] for i in rep[rows]])
            be = BACKENDS.build("selective_mahalanobis", shrinkage=self.score_cfg["shrinkage"], center=False,
                                group_by=self.score_cfg["group_by"])
            return be.fit(blocks[rows], meta)

        if self.mics_cfg["backend"] != "per_mic":
            self._mic_backends = None
            self.backend = fitted(np.arange(len(blocks)))
            return
        self._mic_backends = {}
        for ch in (0, 1):
            rows = np.flatnonzero(mic == ch)
            if not len(rows):
                raise ConfigError(f"autoencoder_mc[{self.context.group}]: mics.backend: per_mic needs training audio "
                                  f"of both microphones; none of the {_MIC[ch]} microphone")
            self._mic_backends[ch] = fitted(rows)
        self.backend = self._mic_backends[_CHANNEL[self.mics_cfg["score"]]]

    def state_dict(self) -> dict[str, Any]:
        from .base import backend_to_state

        state = super().state_dict()
        state["mics"] = dict(self.mics_cfg)
        if self._mic_norms is not None:
            state["mic_norms"] = {_MIC[ch]: [m.clone(), s.clone()] for ch, (m, s) in self._mic_norms.items()}
        if self._mic_backends is not None:
            state["mic_backends"] = {_MIC[ch]: backend_to_state(be) for ch, be in self._mic_backends.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..errors import CheckpointError
        from .base import backend_from_state

        super().load_state_dict(state)
        self._mic_norms = self._mic_backends = None
        try:
            if state.get("mic_norms"):
                self._mic_norms = {_CHANNEL[k]: (v[0].float(), v[1].float()) for k, v in state["mic_norms"].items()}
            if state.get("mic_backends"):
                self._mic_backends = {_CHANNEL[k]: backend_from_state(v) for k, v in state["mic_backends"].items()}
        except (KeyError, IndexError, AttributeError, TypeError) as e:
            raise CheckpointError(f"autoencoder_mc: the saved per-microphone statistics are malformed ({e!r})") from e
        for what, have, want in (("norm", self._mic_norms, self.model_cfg["normalize"]),
                                 ("backend", self._mic_backends, self.score_cfg["kind"] == "mahalanobis")):
            if self.mics_cfg[what] == "per_mic" and want and (have is None or set(have) != {0, 1}):
                raise ConfigError(f"autoencoder_mc: mics.{what} is per_mic but the saved state has no per-microphone "
                                  f"{what} statistics (it was trained with mics.{what}: shared); use the run's own "
                                  f"config or retrain")
        self.select_mic(self.mics_cfg["score"])
