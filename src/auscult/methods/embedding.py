"""Small-data methods: a fixed clip encoder, a back-end, and a threshold from leave-one-out scores.

Two registered methods share this code (:class:`EncoderMethod`); both wrap
:class:`auscult.encoders.EmbeddingDetector`:

* ``bandstats`` -- per-band mean and frame-to-frame flux of 32 linear log band energies
  (:class:`~auscult.encoders.BandStatsEncoder`), one selective-Mahalanobis member per statistic
  (each z-scored), the two scores z-fused against their leave-one-out normal scores
  (:class:`~auscult.encoders.FusedDetector`; ``fuse_stats: false`` scores the 64 numbers with one
  Mahalanobis). On the real gearbox folder at N = 95: 73.0 AUC / 67.3 pAUC (one Mahalanobis: 73.5 /
  67.8), against 56.4 / 52.6 for the autoencoder and at most 57.2 / 52.3 for PyOD's audio detectors;
  on 9 simulated units never seen before, 75-79 AUC where one Mahalanobis gets 67-73 -- the fusion is
  the choice that holds on both (docs/benchmarks.md, small data). What ``auscult fit --method auto``
  picks for a unit (see :func:`auscult.monitor.fit.choose_method`).
* ``encoder_knn`` -- the CNN encoder pre-trained on simulated machines and shipped in the package
  (default ``auscult-machine-v2``, pre-trained on issue 14's simulator; ``auscult-machine-v1``, the
  earlier simulator's, stays loadable: see ``src/auscult/encoders/weights/*.md``), frozen, scored by
  the k-NN with local-density normalisation (``knn_norm``). With v1 it did well on simulated units it
  never saw (~71 AUC at N = 95, the earlier simulator) but did not transfer to the real gearbox (~49-57
  AUC): a research and comparison method, not the default. The configuration it saves names its
  encoder, so a later default cannot change what a saved model means.

Nothing is trained on the user's data except the back-end, so every training clip is in the final
model *and* gets an honest normal score from a model fitted without it (leave-one-out; standardisation
refitted in each fold). Those scores set the threshold -- no quarter of a small folder is held out:
a training clip scored again (the research door fits its threshold on training normals) gets its
leave-one-out score. Windows the engineer's door cut from one recording are left out together
(``FitContext.extra["recording_of"]``: clip path -> recording), so a window is never scored against
its neighbours from the same recording.

Recipe keys (``bandstats``)::

    bandstats: {n_bands: 32, stats: [mean, flux], scale: linear, n_fft: 1024, hop_length: 256, fuse_stats: true,
                folds: null}
    backend:   {name: selective_mahalanobis}

(``encoder_knn``)::

    encoder_knn: {weights: auscult-machine-v2, window_hop: null, folds: null}
    backend:     {name: knn_norm, normalize: local}

``folds: null`` is leave-one-out (one fold per clip or recording); an integer K uses K folds (large
folders). The front-end is the encoder's own (its section), not the recipe's ``features``: only the
sample rate follows ``audio.sample_rate``.

Capabilities: ``embed`` (the encoder's clip vectors, before standardisation); ``bandstats`` also
``explain`` (per band and frame, each statistic's per-frame contribution over the highest one the
training clips reached in that band, summed over the statistics: :meth:`BandStatsMethod.explain`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from .base import METHODS, FitContext, Method, TFMap, merge_section

__all__ = ["EncoderMethod", "BandStatsMethod", "EncoderKNNMethod"]


class EncoderMethod(Method):
    """A frozen encoder + :class:`~auscult.encoders.EmbeddingDetector` (see the module docstring)."""

    capabilities = frozenset({"embed"})
    #: the engineer's door fits on every recording and thresholds on :meth:`reference_scores`
    #: (leave-one-recording-out) instead of holding a quarter of the recordings out
    calibrates_itself = True
    own_defaults: dict[str, Any] = {}
    backend_default: dict[str, Any] = {}

    @classmethod
    def fit_preset(cls, n_windows: int, window_samples: int, knn_k: int = 2,
                   features: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return {"backend": dict(cls.backend_default)}

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        from ..encoders import EmbeddingDetector, build_encoder

        super().__init__(config, context)
        self.opts = merge_section(self.own_defaults, config.get(self.name), self.name)
        folds = self.opts.get("folds")
        if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
            raise ConfigError(f"{self.name}.folds must be null (leave-one-out) or an integer >= 2, got {folds!r}")
        backend = {**self.backend_default, **dict(config.get("backend") or {})}
        backend.pop("group_by", None)  # one model per unit: the back-end is fitted as one group
        self.encoder = build_encoder(self.encoder_spec())
        if self.encoder.sample_rate != self.sample_rate:
            raise ConfigError(f"{self.name}: the encoder works at {self.encoder.sample_rate} Hz but audio.sample_rate is "
                              f"{self.sample_rate}; set audio.sample_rate: {self.encoder.sample_rate}")
        self.blocks = self.member_blocks()
        if self.blocks is None:
            self.detector: Any = EmbeddingDetector(self.encoder, backend=backend, standardize=True, folds=folds,
                                                   seed=int(self.context.seed))
        else:
            from ..encoders import FusedDetector

            self.detector = FusedDetector([EmbeddingDetector(spec, backend=backend, standardize=True, folds=folds,
                                                             seed=int(self.context.seed))
                                           for spec, _ in self.blocks], fusion="z")
        self.train_paths: list[str] = []

    def member_blocks(self) -> Optional[list[tuple[dict[str, Any], tuple[int, int]]]]:
        """``None`` (one detector on the whole embedding) or, per fused member, its encoder spec and
        the embedding columns ``[a, b)`` it scores."""
        return None

    def _split(self, x: np.ndarray) -> Any:
        return x if self.blocks is None else [x[:, a:b] for _, (a, b) in self.blocks]

    def encoder_spec(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def min_samples(self) -> int:
        return int(self.encoder.feature_cfg.n_fft)

    @property
    def feature_config(self) -> Any:
        """The encoder's front-end settings (what explanations are framed by)."""
        enc = getattr(self, "encoder", None)
        return enc.feature_cfg if enc is not None else super().feature_config

    # ---- fit / score -------------------------------------------------------------------------
    def _waves(self, clips: Sequence[Clip], audio: Any) -> list[np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32) for w in audio.load_many(list(clips))]
        for c, w in zip(clips, waves):
            if w.ndim != 1:
                raise DataError(f"{c.path}: {self.name} takes mono audio (audio.channel: mean), got shape {w.shape}")
            if w.shape[0] < self.min_samples:
                raise DataError(f"{c.path}: {w.shape[0]} samples, shorter than one analysis window ({self.min_samples}); "
                                f"use longer clips")
        return waves

    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "EncoderMethod":
        """Embed the training clips, fit the back-end on all of them and their leave-one-out scores
        (``val`` is not needed: there is nothing to select)."""
        train = list(train)
        recording_of = dict(self.context.extra.get("recording_of") or {})
        groups = [recording_of.get(str(c.path), str(c.path)) for c in train]
        x = self.encoder.embed(self._waves(train, audio))
        self.detector.fit_embeddings(self._split(x), groups=groups)
        self.train_paths = [str(c.path) for c in train]
        return self

    def _check(self) -> None:
        if self.detector.normal_scores_ is None:
            raise ConfigError(f"{self.name}: call fit() (or load_state_dict()) before score()")

    def reference_scores(self) -> np.ndarray:
        """The training clips' leave-one-out (or leave-one-recording-out) normal scores, in training order."""
        self._check()
        return np.array(self.detector.normal_scores_, dtype=np.float64)

    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """The encoder's clip vectors ``[N, dim]`` (before the detector's standardisation)."""
        clips = list(clips)
        return self.encoder.embed(self._waves(clips, audio)) if clips else np.zeros((0, 0))

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """The back-end's score of each clip; a training clip gets its leave-one-out score."""
        self._check()
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        s = np.asarray(self.detector.score_embeddings(self._split(self.embed(clips, audio))), dtype=np.float64)
        index = {p: j for j, p in enumerate(self.train_paths)}
        for i, c in enumerate(clips):
            j = index.get(str(c.path))
            if j is not None:
                s[i] = float(self.detector.normal_scores_[j])
        return s

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check()
        return {"method": self.name, "version": 1, "detector": self.detector.config(),
                "arrays": {k: np.asarray(v) for k, v in self.detector.state().items()},
                "train_paths": list(self.train_paths)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..encoders import EmbeddingDetector, FusedDetector

        if not isinstance(state, dict) or state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method') if isinstance(state, dict) else None!r}, "
                                  f"not {self.name!r}")
        cfg, arrays = dict(state["detector"]), dict(state["arrays"])
        fused = "members" in cfg
        if fused != (self.blocks is not None):
            raise CheckpointError(f"{self.name}: the saved detector is {'fused' if fused else 'single'}, the recipe's "
                                  f"is {'fused' if self.blocks is not None else 'single'} (bandstats.fuse_stats)")
        if fused:
            det: Any = FusedDetector.from_saved(cfg, arrays)
            want = [(spec, b - a) for spec, (a, b) in self.blocks]
            got = [(m.encoder.config(), None if m.mu_ is None else m.mu_.shape[0]) for m in det.members]
            if [g[1] for g in got] != [w[1] for w in want] or \
                    [g[0] for g in got] != [EmbeddingDetector(w[0]).encoder.config() for w in want]:
                raise CheckpointError(f"{self.name}: the saved members {got} differ from the recipe's")
        else:
            det = EmbeddingDetector.from_saved(cfg, arrays)
            if det.encoder.config() != self.encoder.config():
                raise CheckpointError(f"{self.name}: the saved detector's encoder {det.encoder.config()} differs from "
                                      f"the recipe's {self.encoder.config()}")
            if det.mu_ is None or det.mu_.shape[0] != self.encoder.dim:
                raise CheckpointError(f"{self.name}: saved standardisation has "
                                      f"{None if det.mu_ is None else det.mu_.shape[0]} dimensions, the encoder gives "
                                      f"{self.encoder.dim}")
            det.encoder = self.encoder
        self.detector = det
        self.train_paths = [str(p) for p in state.get("train_paths", [])]

    def describe(self) -> str:
        n = 0 if self.detector.normal_scores_ is None else len(self.detector.normal_scores_)
        members = getattr(self.detector, "members", [self.detector])
        how = " + ".join(f"{m.backend_spec['name']}" for m in members)
        fused = f"z-fusion of {len(members)} members: " if len(members) > 1 else ""
        return (f"{self.name} ({self.encoder.name} encoder, z-scored, {fused}{how} on {n} training clips; threshold "
                f"from leave-one-out scores)")


BANDSTATS_DEFAULTS: dict[str, Any] = {"n_bands": 32, "stats": ["mean", "flux"], "scale": "linear", "n_fft": 1024,
                                      "hop_length": 256, "fuse_stats": True, "folds": None}


@METHODS.register("bandstats", defaults={"bandstats": BANDSTATS_DEFAULTS},
                  description="band mean and flux statistics, a Mahalanobis member each, z-fused, leave-one-out "
                              "threshold: best measured on one unit with 25-95 clips")
class BandStatsMethod(EncoderMethod):
    """``bandstats``: :class:`~auscult.encoders.BandStatsEncoder` + selective Mahalanobis."""

    name = "bandstats"
    capabilities = frozenset({"embed", "explain"})
    own_defaults = BANDSTATS_DEFAULTS
    backend_default = {"name": "selective_mahalanobis"}

    def encoder_spec(self, stats: Optional[Sequence[str]] = None) -> dict[str, Any]:
        o = self.opts
        return {"name": "bandstats", "n_bands": int(o["n_bands"]), "stats": list(stats or o["stats"]),
                "scale": str(o["scale"]), "features": {"n_fft": int(o["n_fft"]), "hop_length": int(o["hop_length"]),
                                                       "sample_rate": self.sample_rate}}

    def member_blocks(self) -> Optional[list[tuple[dict[str, Any], tuple[int, int]]]]:
        """With ``fuse_stats`` (default) and several statistics: one member per statistic (its
        ``n_bands`` columns of the one band-statistics vector), z-fused."""
        o = self.opts
        if not isinstance(o["fuse_stats"], bool):
            raise ConfigError(f"bandstats.fuse_stats must be true or false, got {o['fuse_stats']!r}")
        stats = list(o["stats"])
        if not o["fuse_stats"] or len(stats) < 2:
            return None
        k = int(o["n_bands"])
        return [(self.encoder_spec([s]), (i * k, (i + 1) * k)) for i, s in enumerate(stats)]

    def _standardisation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per statistic (in ``stats`` order): the training clips' mean and spread of it, per band."""
        k = int(self.opts["n_bands"])
        if self.blocks is not None:
            return [(np.asarray(m.mu_), np.asarray(m.sd_)) for m in self.detector.members]
        mu, sd = np.asarray(self.detector.mu_), np.asarray(self.detector.sd_)
        return [(mu[i * k:(i + 1) * k], sd[i * k:(i + 1) * k]) for i in range(len(self.opts["stats"]))]

    # ---- explain ------------------------------------------------------------------------------
    def _levels(self, wave: np.ndarray) -> np.ndarray:
        """``[K, F]`` band energies in dB of every frame of one waveform (the bundle drops edge frames)."""
        import torch

        fe, cfg = self.encoder.fe, self.encoder.feature_cfg
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(wave))[None]
            power = fe.spectrogram.frame_power(x)  # [1, F, n_freqs]
            e = torch.matmul(power, fe.bands.to(power.dtype).t())[0].T  # [K, F]
            return (10.0 * torch.log10(e.clamp_min(cfg.eps))).double().numpy()

    def _components(self, e_db: np.ndarray) -> dict[str, np.ndarray]:
        """Per statistic, each (band, frame)'s contribution to it, in dB: ``mean`` -- the level above the
        training clips' band mean (0 below it); ``flux`` -- the change from the previous frame; ``std`` --
        the distance from the clip's own band mean."""
        from ..monitor.explain import level_contributions

        mu = {stat: m for stat, (m, _) in zip(self.opts["stats"], self._standardisation())}
        kind = {"mean": "above", "flux": "change", "std": "spread"}
        c = level_contributions(e_db, mu.get("mean"), [kind[stat] for stat in self.opts["stats"]])
        return {stat: c[kind[stat]] for stat in self.opts["stats"]}

    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "BandStatsMethod":
        """Fit the detector (:meth:`EncoderMethod.fit`), then the explanation's reference: per statistic
        and band, the highest per-frame contribution the training clips reached (:meth:`explain`)."""
        from ..features.bandstats import interior_frame_mask
        from ..monitor.explain import TAIL_NEIGHBOURS, tail_reference

        super().fit(train, val, audio)
        cfg = self.encoder.feature_cfg
        per: dict[str, list[np.ndarray]] = {s: [] for s in self.opts["stats"]}
        for w in self._waves(list(train), audio):
            e_db = self._levels(w)
            keep = interior_frame_mask(e_db.shape[1], int(w.shape[0]), cfg)
            for stat, comp in self._components(e_db).items():
                per[stat].append(comp[:, keep])
        self.explain_ref = {stat: tail_reference(maps, smooth=1, neighbours=TAIL_NEIGHBOURS)
                            for stat, maps in per.items()}
        return self

    def explain(self, clip: Clip, audio: Any) -> TFMap:
        """Every (band, frame): per statistic, the frame's contribution to it (:meth:`_components`, dB)
        over the highest contribution any training frame reached in that band and its neighbours
        (:func:`~auscult.monitor.explain.tail_map`, unsmoothed), summed over the statistics. So a steady
        tone (it raises ``mean``) and a click (it raises ``flux``) both count, each against how far that
        statistic moves in normal audio. The clip score is the method's score.

        Models saved before this reference existed explain as they did: the sum over the statistics of
        each frame's squared z-score against the training clips' clip-level statistics (there the
        frame-to-frame ``flux`` term, whose clip-level spread is tiny, outweighed the band level and
        the map showed a steady fault only at its onset: docs/benchmarks.md, Localisation)."""
        from ..monitor.explain import tail_map

        self._check()
        fe = self.encoder.fe
        cfg = self.encoder.feature_cfg
        (wave,) = self._waves([clip], audio)
        e_db = self._levels(wave)
        ref = getattr(self, "explain_ref", None)
        tf = np.zeros_like(e_db)
        if ref:
            for stat, comp in self._components(e_db).items():
                tf += tail_map(comp, *ref[stat], smooth=1)
            how = ("sum over the statistics (" + ", ".join(self.opts["stats"]) + ") of each frame's contribution "
                   "over the highest one a training frame reached in its band and neighbours")
        else:
            per_frame = {"mean": e_db,
                         "flux": np.abs(np.diff(e_db, axis=1, prepend=e_db[:, :1])),
                         "std": np.abs(e_db - e_db.mean(axis=1, keepdims=True))}
            for stat, (mu, sd) in zip(self.opts["stats"], self._standardisation()):
                tf += ((per_frame[stat] - mu[:, None]) / sd[:, None]) ** 2
            how = ("sum over the statistics (" + ", ".join(self.opts["stats"]) + ") of each frame's squared "
                   "z-score per band against the training clips")
        bands = fe.bands.double().numpy()
        f_bins = np.arange(bands.shape[1]) * cfg.sample_rate / cfg.n_fft
        freqs = (bands @ f_bins) / np.maximum(bands.sum(axis=1), 1e-12)
        score = float(self.score([clip], audio)[0])
        return TFMap(times=np.arange(e_db.shape[1]) * cfg.hop_length / cfg.sample_rate, frame_scores=tf.mean(axis=0),
                     freqs=freqs, tf_map=tf, spectrogram=e_db, score=score, how=how)

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        ref = getattr(self, "explain_ref", None)
        if ref:
            out["explain_ref"] = {stat: {"loc": np.asarray(loc), "scale": np.asarray(scale)}
                                  for stat, (loc, scale) in ref.items()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        ref = state.get("explain_ref")
        self.explain_ref = None
        if ref is not None:
            k = int(self.opts["n_bands"])
            try:
                loaded = {str(stat): (np.asarray(v["loc"], dtype=np.float64), np.asarray(v["scale"], dtype=np.float64))
                          for stat, v in dict(ref).items()}
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{self.name}: saved explanation reference is incomplete ({exc}); refit") from None
            if set(loaded) != set(self.opts["stats"]) or any(a.shape != (k,) or b.shape != (k,) for a, b in loaded.values()):
                raise CheckpointError(f"{self.name}: saved explanation reference ({sorted(loaded)}) does not fit the "
                                      f"recipe's {k} bands x statistics {list(self.opts['stats'])}; refit")
            self.explain_ref = loaded


def _default_encoder() -> str:
    from ..encoders import DEFAULT_ENCODER

    return DEFAULT_ENCODER


ENCODER_KNN_DEFAULTS: dict[str, Any] = {"weights": _default_encoder(), "window_hop": None, "folds": None}


@METHODS.register("encoder_knn", defaults={"encoder_knn": ENCODER_KNN_DEFAULTS},
                  description="the shipped encoder pre-trained on simulated machines (frozen) + k-NN with local-density "
                              "normalisation, leave-one-out threshold")
class EncoderKNNMethod(EncoderMethod):
    """``encoder_knn``: the shipped :class:`~auscult.encoders.CNNEncoder` + ``knn_norm``."""

    name = "encoder_knn"
    own_defaults = ENCODER_KNN_DEFAULTS
    backend_default = {"name": "knn_norm", "normalize": "local"}

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        #: whether the recipe named the encoder. The config this method saves (bundles) always names
        #: it, so a later change of the default encoder cannot change what a saved model means.
        self.weights_named = "weights" in dict(config.get(self.name) or {})
        self.config = {**dict(config), self.name: dict(self.opts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As :meth:`EncoderMethod.load_state_dict`; a model saved from a recipe that did not name the
        encoder (bundles fitted while ``auscult-machine-v1`` was the default) loads with the shipped
        encoder its saved detector names, not with today's default."""
        from ..encoders import PRETRAINED, build_encoder

        det = state.get("detector") if isinstance(state, dict) else None
        saved = dict(det.get("encoder") or {}) if isinstance(det, dict) and "members" not in det else {}
        if (not self.weights_named and saved.get("name") == "cnn" and saved.get("weights") in PRETRAINED
                and saved["weights"] != self.opts["weights"]):
            self.opts = {**self.opts, "weights": saved["weights"]}
            self.config = {**self.config, self.name: dict(self.opts)}
            self.encoder = build_encoder(self.encoder_spec())
        super().load_state_dict(state)

    def encoder_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": "cnn", "weights": str(self.opts["weights"])}
        if self.opts.get("window_hop") is not None:
            spec["window_hop"] = int(self.opts["window_hop"])
        return spec
