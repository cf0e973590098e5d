"""The DCASE autoencoder baseline as an auscult method (``method: autoencoder``).

Features: log-mel (``features:``; 128 mels, n_fft 1024, hop 512, power 2, ``10*log10``), ``context``
consecutive frames stacked into one vector (5 x 128 = 640). Net: the dense autoencoder
640-128x4-8-128x4-640 (:class:`auscult.nets.autoencoder.DenseAutoencoder`), trained with Adam
(lr 1e-3) on the mean squared reconstruction error of every stacked vector of the training clips.
Model selection: the epoch with the lowest reconstruction error on the held-out training normals
(``val``), when there are any.

Scores (``score.kind``):

* ``mse`` — the clip's mean squared reconstruction error (2020-2023 baselines);
* ``mahalanobis`` — selective Mahalanobis on reconstruction residuals (2022 baseline): the
  residual ``x - x_hat`` of every vector is cut into ``context`` blocks of ``n_mels`` values
  (one per frame); a covariance is estimated per section and domain (source, target) from the
  training clips' blocks; a clip's score is ``min_domain d_bar^T Sigma_domain^-1 d_bar`` with
  ``d_bar`` the mean of the clip's residual blocks (measured from the origin).

Recipe keys read here (all optional, defaults = the baseline)::

    features: {n_fft: 1024, hop_length: 512, n_mels: 128, power: 2.0, ...}   # FeatureConfig
    model:    {context: 5, hidden: 128, bottleneck: 8, n_layers: 4, normalize: false}
    train:    {epochs: 100, batch_size: 512, lr: 0.001, optimizer: adam, weight_decay: 0.0,
               patience: null, min_delta: 0.0, log_every: 50, checkpoint_every_steps: null, device: auto,
               threads: 1}

``model.normalize: true`` standardises every mel band with the training frames' mean and standard
deviation (kept in the state) — not in the baseline, whose linear output layer must learn the
absolute dB level (tens of dB) through its bias at lr 1e-3, which takes the baseline's ~100 epochs.
Short runs (the synthetic recipe, the demo) use it.

``train.threads`` (torch intra-op threads while fitting/scoring; null = leave torch's setting):
the AE's layers are too small to gain from more than one thread, and on a busy 2-core machine two
threads made a 256 x 640 training step 5-40x slower than one (0.07 s vs 0.5-3.5 s, measured).
    score:    {kind: mse, shrinkage: none, group_by: section, batch_clips: 16}
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clip import Clip
from ..errors import ConfigError, DataError
from . import _neural as nu
from .base import (METHODS, FitContext, Method, ScoringGraph, TFMap, backend_from_state, backend_to_state,
                   merge_section, section_of)

MODEL_KEYS = {"context": 5, "hidden": 128, "bottleneck": 8, "n_layers": 4, "normalize": False}
TRAIN_KEYS = {"epochs": 100, "batch_size": 512, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
              "patience": None, "min_delta": 0.0, "log_every": 50, "checkpoint_every_steps": None, "device": "auto",
              "amp": "off", "threads": 1}
SCORE_KEYS = {"kind": "mse", "shrinkage": "none", "group_by": "section", "batch_clips": 16}
SCORE_KINDS = ("mse", "mahalanobis")


class _Features:
    """Per-clip time-major log-mel ``[F, n_mels]`` of many clips, and stacked-vector gathers."""

    def __init__(self, mats: list, context: int):
        import torch

        self.context = context
        self.lengths = [int(m.shape[0]) for m in mats]
        self.data = torch.cat(mats, 0) if mats else torch.zeros((0, 0))
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])[:-1]
        for n, m in zip(self.lengths, mats):
            if n < context:
                raise DataError(f"a clip gives {n} log-mel frames, fewer than the context of {context}; "
                                f"use longer clips or a smaller model.context")
        self.starts = torch.as_tensor(np.concatenate(
            [o + np.arange(n - context + 1) for o, n in zip(offsets, self.lengths)]) if mats else np.zeros(0),
            dtype=torch.long)
        self.owner = torch.as_tensor(np.concatenate(
            [np.full(n - context + 1, i) for i, n in enumerate(self.lengths)]) if mats else np.zeros(0),
            dtype=torch.long)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def gather(self, idx):
        """Stacked vectors ``[len(idx), context * n_mels]`` (frame ``j``'s mels first)."""
        import torch

        rows = self.starts[idx][:, None] + torch.arange(self.context)
        return self.data[rows].reshape(rows.shape[0], -1)


class _Indices:
    """A map-style dataset of vector indices (the DataLoader shuffles them; the step gathers)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@METHODS.register("autoencoder", defaults={"model": MODEL_KEYS, "train": TRAIN_KEYS, "score": SCORE_KEYS},
                  description="DCASE baseline: dense AE on stacked log-mel frames; MSE or selective Mahalanobis")
class AutoencoderMethod(Method):
    """The DCASE autoencoder baseline (see the module docstring for the recipe keys).

    Capabilities: ``embed`` (mean residual block per clip), ``explain`` (per frame and mel band, the
    squared residual where the input is above its reconstruction, over the highest a training frame
    reached in that band and its neighbours; models saved before: the two-sided squared residual, whose
    mean is the MSE score), ``export`` (log-mel + AE + the score
    in one graph; with ``score.kind: mahalanobis`` the graph returns the residual block and the
    selective-Mahalanobis back-end scores it).
    """

    name = "autoencoder"
    capabilities = frozenset({"embed", "explain", "export"})

    @classmethod
    def fit_preset(cls, n_windows: int, window_samples: int, knn_k: int = 2,
                   features: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """``auscult fit``: MSE score, batch 512, epochs scaled to the data (about 2000 optimiser steps,
        10 to 100 epochs)."""
        import math

        from ..features import FeatureConfig

        fc = FeatureConfig.from_dict({k: v for k, v in dict(features or {}).items() if k != "frontend"})
        ctx = int(MODEL_KEYS["context"])
        n_vectors = n_windows * max(0, fc.frames(max(1, window_samples)) - ctx + 1)
        batch = int(TRAIN_KEYS["batch_size"])
        steps = max(1, math.ceil(n_vectors / batch))
        return {"train": {"epochs": int(min(100, max(10, math.ceil(2000 / steps)))), "batch_size": batch},
                "score": {"kind": "mse"}}

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        from ..features import FeatureConfig

        self.model_cfg = merge_section(MODEL_KEYS, config.get("model"), "model")
        self.train_cfg = merge_section(TRAIN_KEYS, config.get("train"), "train")
        self.score_cfg = merge_section(SCORE_KEYS, config.get("score"), "score")
        if self.score_cfg["kind"] not in SCORE_KINDS:
            raise ConfigError(f"autoencoder: score.kind must be one of {SCORE_KINDS}, got {self.score_cfg['kind']!r}")
        for k in ("context", "hidden", "bottleneck", "n_layers"):
            v = self.model_cfg[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"autoencoder: model.{k} must be a positive integer, got {v!r}")
        for k in ("epochs", "batch_size"):
            v = self.train_cfg[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"autoencoder: train.{k} must be a positive integer, got {v!r}")
        feats = dict(section_of(config, "features"))
        sr = section_of(config, "audio").get("sample_rate", 16000)
        feats.setdefault("sample_rate", sr)
        if feats["sample_rate"] != sr:
            raise ConfigError(f"features.sample_rate={feats['sample_rate']} differs from audio.sample_rate={sr}; "
                              f"drop features.sample_rate (it follows the audio)")
        self.feature_cfg = FeatureConfig.from_dict(feats)
        if not isinstance(self.model_cfg["normalize"], bool):
            raise ConfigError(f"autoencoder: model.normalize must be true or false, got {self.model_cfg['normalize']!r}")
        self.net = None
        self.norm: Optional[tuple] = None  # (mean [n_mels], std [n_mels]) when model.normalize
        self.backend = None
        self._frontend = None
        #: (loc, scale) per mel band of the explanation's map (:meth:`explain`): what the training clips'
        #: one-sided residuals reached; None in models saved before it existed (they explain the old way)
        self.explain_ref: Optional[tuple[np.ndarray, np.ndarray]] = None

    # -------------------------------------------------------------------- pieces
    @property
    def input_dim(self) -> int:
        return self.feature_cfg.n_mels * self.model_cfg["context"]

    @property
    def feature_config(self):
        return self.feature_cfg

    @property
    def min_samples(self) -> int:
        """``context`` frames need ``(context - 1) * hop`` samples (centred frames)."""
        return max(1, (int(self.model_cfg["context"]) - 1) * int(self.feature_cfg.hop_length))

    def _device(self):
        from ..engine import resolve_device

        # an explicit device (CLI --device cuda, FitContext(device="cpu")) wins over the recipe's train.device
        dev = self.context.device
        return resolve_device(self.train_cfg["device"] if dev in (None, "", "auto") else dev)

    def _build_net(self):
        from ..nets import ClipGeometry

        # the AE sees stacked frames, whatever the clip length: the geometry's context and mels fix its size
        geo = ClipGeometry.from_configs(self.audio_config, self.feature_cfg, n_samples=self.min_samples,
                                        context=int(self.model_cfg["context"]))
        return nu.build_net("autoencoder", {k: self.model_cfg[k] for k in ("hidden", "bottleneck", "n_layers")}, geo)

    def _logmel(self):
        if self._frontend is None:
            from ..features import LogMel

            self._frontend = LogMel(self.feature_cfg)
        return self._frontend

    def features(self, clips: Sequence[Clip], audio) -> _Features:
        """Time-major log-mel of every clip (computed in batches of equal-length clips)."""
        import torch

        fe = self._logmel()
        bs = int(self.score_cfg["batch_clips"])
        mats: list = []
        samples: list = []
        with torch.no_grad():
            for i in range(0, len(clips), bs):
                waves = audio.load_many(clips[i:i + bs])
                samples.extend(int(w.shape[0]) for w in waves)
                if len({w.shape[0] for w in waves}) == 1:
                    lm = fe(torch.from_numpy(np.stack(waves)))
                    mats.extend(m.transpose(0, 1).contiguous() for m in lm)
                else:
                    mats.extend(fe(torch.from_numpy(w)[None])[0].transpose(0, 1).contiguous() for w in waves)
        if self.norm is not None:
            mean, std = self.norm
            mats = [(m - mean) / std for m in mats]
        out = _Features(mats, self.model_cfg["context"])
        out.samples = samples  # each clip's length in samples (which frames see padding)
        return out

    def _reference_rows(self, feats: _Features) -> list[int]:
        """Which log-mel matrices of ``feats`` the explanation's reference learns from (all of them here;
        one per clip)."""
        return list(range(len(feats.lengths)))

    def _clip_maps(self, clips: Sequence[Clip], audio, device):
        """Per log-mel matrix of ``clips`` (:meth:`_reference_rows`): its one-sided squared residual map
        ``[n_mels, F]`` (:meth:`_positive_map`) and the mask of its interior frames (whose analysis
        window lies inside the clip)."""
        from ..monitor.explain import interior_frames

        cfg = self.feature_cfg
        bs = int(self.score_cfg["batch_clips"])
        for i in range(0, len(clips), bs):
            part = list(clips[i:i + bs])
            feats = self.features(part, audio)
            res = self._residuals(feats, device).double()
            for j in self._reference_rows(feats):
                n = int(feats.lengths[j])
                yield (self._positive_map(res[feats.owner == j], n),
                       interior_frames(n, feats.samples[j], cfg.n_fft, cfg.hop_length))

    def _overlap_mean(self, per_pos, n_frames: int):
        """Per-position values ``[V, context * n_mels]`` -> their mean over the stacked vectors that hold
        each frame ``[F, n_mels]`` (vector ``v``'s position ``j`` is frame ``v + j``)."""
        import torch

        ctx, n_mels = int(self.model_cfg["context"]), int(self.feature_cfg.n_mels)
        v = per_pos.reshape(-1, ctx, n_mels)
        acc = torch.zeros((n_frames, n_mels), dtype=torch.float64)
        cnt = torch.zeros(n_frames, dtype=torch.float64)
        n_vec = v.shape[0]
        for j in range(ctx):
            acc[j:j + n_vec] += v[:, j]
            cnt[j:j + n_vec] += 1
        return (acc / cnt.clamp(min=1)[:, None]).numpy()

    def _positive_map(self, res, n_frames: int) -> np.ndarray:
        """The part of the squared residual where the input is *above* its reconstruction,
        ``max(x - x_hat, 0)^2``, per (mel band, frame) ``[n_mels, F]``, averaged over the stacked vectors
        holding the frame: energy the net could not explain, not a frame quieter than expected."""
        return self._overlap_mean(res.clamp(min=0.0) ** 2, n_frames).T.copy()

    def _residuals(self, feats: _Features, device, batch: int = 4096):
        """Per-vector residuals ``x - x_hat`` ``[V, D]`` on the CPU."""
        import torch

        assert self.net is not None
        self.net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(feats), batch):
                x = feats.gather(torch.arange(i, min(i + batch, len(feats)))).to(device)
                out.append((x - self.net(x)).cpu())
        return torch.cat(out, 0) if out else torch.zeros((0, self.input_dim))

    # -------------------------------------------------------------------- fit
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio) -> "AutoencoderMethod":
        with nu.torch_threads(self.train_cfg["threads"]):
            return self._fit(train, val, audio)

    def _fit(self, train: Sequence[Clip], val: Sequence[Clip], audio) -> "AutoencoderMethod":
        import torch

        from ..engine import RunDir, TrainConfig, Trainer, build_optimizer, config_hash, seed_everything

        train, val = list(train), list(val)
        if not train:
            raise DataError(f"autoencoder[{self.context.group}]: no training clips")
        bad = [c for c in list(train) + list(val) if c.split == "test" or c.label == "anomaly"]
        if bad:
            raise DataError(f"{bad[0].path}: autoencoder.fit got a test or anomalous clip; it trains on "
                            f"training normals only")
        ctx = self.context
        device = self._device()
        seed_everything(int(ctx.seed))
        self.norm = None
        tr_feats = self.features(train, audio)
        if self.model_cfg["normalize"]:  # per-mel mean/std of the training frames, then features again
            self._fit_norm(tr_feats)
        va_feats = self.features(val, audio) if val else None
        self.net = self._build_net()
        tc = self.train_cfg
        data = tr_feats.data.to(device)
        tr_feats.data = data
        tr_feats.starts = tr_feats.starts.to(device)
        # shuffled by the global torch RNG (seeded above): what the engine restores on an exact resume
        loader = torch.utils.data.DataLoader(_Indices(len(tr_feats)), batch_size=tc["batch_size"], shuffle=True,
                                             drop_last=False)
        opt = build_optimizer(self.net, name=tc["optimizer"], lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))

        def step_fn(idx, model, state):
            x = tr_feats.gather(idx.to(device))
            return {"loss": ((model(x) - x) ** 2).mean()}

        val_fn = None
        if va_feats is not None and len(va_feats):
            va_feats.data = va_feats.data.to(device)
            va_feats.starts = va_feats.starts.to(device)

            def val_fn(model, state):
                tot, n = 0.0, 0
                for i in range(0, len(va_feats), 8192):
                    x = va_feats.gather(torch.arange(i, min(i + 8192, len(va_feats)), device=device))
                    tot += float(((model(x) - x) ** 2).mean(1).sum())
                    n += x.shape[0]
                return {"val_loss": tot / max(n, 1)}

        run = None
        if ctx.run_dir is not None:
            run = RunDir(ctx.run_dir)
            run.checkpoints.mkdir(parents=True, exist_ok=True)
        hash_src = {k: self.config.get(k) for k in ("features", "model", "train", "seed")}
        hash_src["group"] = ctx.group
        cfg = TrainConfig(epochs=tc["epochs"], seed=int(ctx.seed), device=str(device), amp=tc["amp"],
                          log_every=tc["log_every"], checkpoint_every_steps=tc["checkpoint_every_steps"],
                          patience=tc["patience"], min_delta=float(tc["min_delta"]), resume=bool(ctx.resume) and run is not None,
                          config_hash=config_hash(hash_src), quiet=True if ctx.quiet else None)
        keep = nu.BestWeights()
        trainer = Trainer(self.net, step_fn, loader, opt, None, cfg, run_dir=run, val_fn=val_fn, callbacks=[keep])
        self.history = trainer.fit()
        # model selection on the held-out training normals: back to the best epoch's weights
        if val_fn is not None:
            nu.restore_selected(self.net, trainer, keep, run, use_ema=False)
        self.net = self.net.to(device).eval()
        self.best_epoch = trainer.best_epoch
        del data
        if self.score_cfg["kind"] == "mahalanobis":
            self._fit_backend(train + val, audio, device)
        self.explain_ref = self._explain_reference(train, audio, device)
        return self

    #: training clips whose frames give each band's median in the explanation's reference (the maximum uses all)
    EXPLAIN_REF_CLIPS = 64

    def _explain_reference(self, clips: Sequence[Clip], audio, device) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~auscult.monitor.explain.tail_reference` (unsmoothed) of the training clips' one-sided
        residual maps (:meth:`_positive_map`, interior frames): per band, the median over the frames of at
        most :attr:`EXPLAIN_REF_CLIPS` clips (spread evenly) and the distance from it to the highest value
        any training frame reached in the band or its neighbours. The training clips were fitted, so their
        residuals could sit below fresh normal audio's; measured on 12 simulated units (40-clip folders,
        ``benchmarks/diag_autoencoder_map.py --bias``): the fitted clips' mean residual is 0.88-1.11 x that
        of unseen normal clips and the per-band maxima of equal numbers of clips 0.82-1.21 x (medians
        0.95-1.0): the bottleneck leaves no room to memorise, so no correction is applied."""
        from ..monitor.explain import tail_scale

        clips = list(clips)
        pick = set(np.linspace(0, len(clips) - 1, min(len(clips), self.EXPLAIN_REF_CLIPS)).round().astype(int).tolist())
        kept, peak = [], None
        for i, (mp, keep) in enumerate(self._clip_maps(clips, audio, device)):
            top = mp[:, keep].max(axis=1)
            peak = top if peak is None else np.maximum(peak, top)
            if i in pick:
                kept.append(mp[:, keep])
        loc = np.median(np.concatenate(kept, axis=1), axis=1)
        return loc, tail_scale(loc, peak)

    def _fit_norm(self, feats: _Features) -> None:
        """``model.normalize``: per-mel mean/std of the training frames; standardises ``feats`` in place."""
        d = feats.data.double()
        self.norm = (d.mean(0).float(), d.std(0).clamp_min(1e-3).float())
        feats.data = ((feats.data - self.norm[0]) / self.norm[1]).contiguous()

    def _fit_backend(self, clips: list[Clip], audio, device) -> None:
        from ..backends import BACKENDS, BackendMeta

        feats = self.features(clips, audio)
        blocks = self._residuals(feats, device).reshape(-1, self.feature_cfg.n_mels).numpy()
        per_clip = np.asarray([n - self.model_cfg["context"] + 1 for n in feats.lengths]) * self.model_cfg["context"]
        rep = np.repeat(np.arange(len(clips)), per_clip)
        meta = BackendMeta.from_clips([clips[i] for i in rep])
        be = BACKENDS.build("selective_mahalanobis", shrinkage=self.score_cfg["shrinkage"], center=False,
                            group_by=self.score_cfg["group_by"])
        self.backend = be.fit(blocks, meta)

    # -------------------------------------------------------------------- score
    def residual_summary(self, clips: Sequence[Clip], audio) -> tuple[np.ndarray, np.ndarray]:
        """Per clip: mean squared error ``[N]`` and mean residual block ``[N, n_mels]``."""
        if self.net is None:
            raise ConfigError("autoencoder: fit() or load_state_dict() before score()")
        clips = list(clips)
        device = next(self.net.parameters()).device
        mse = np.zeros(len(clips))
        dbar = np.zeros((len(clips), self.feature_cfg.n_mels))
        bs = int(self.score_cfg["batch_clips"])
        for i in range(0, len(clips), bs):
            part = clips[i:i + bs]
            feats = self.features(part, audio)
            res = self._residuals(feats, device)
            owner = feats.owner
            for j in range(len(part)):
                r = res[owner == j]
                mse[i + j] = float((r.double() ** 2).mean())
                dbar[i + j] = r.reshape(-1, self.feature_cfg.n_mels).double().mean(0).numpy()
        return mse, dbar

    def score(self, clips: Sequence[Clip], audio) -> np.ndarray:
        with nu.torch_threads(self.train_cfg["threads"]):
            return self._score(list(clips), audio)

    def _score(self, clips: list[Clip], audio) -> np.ndarray:
        if not clips:
            return np.zeros(0)
        mse, dbar = self.residual_summary(clips, audio)
        if self.score_cfg["kind"] == "mse":
            return mse
        from ..backends import BackendMeta

        if self.backend is None:
            raise ConfigError("autoencoder: the Mahalanobis back-end is not fitted")
        return self.backend.score(dbar, BackendMeta.from_clips(clips))

    def embed(self, clips: Sequence[Clip], audio) -> np.ndarray:
        """The mean residual block of each clip ``[N, n_mels]`` (what the Mahalanobis score uses)."""
        with nu.torch_threads(self.train_cfg["threads"]):
            return self.residual_summary(list(clips), audio)[1]

    # -------------------------------------------------------------------- explain / export
    def explain(self, clip: Clip, audio) -> TFMap:
        """Every (mel band, frame): the part of the squared reconstruction residual where the input is
        *above* its reconstruction, ``max(x - x_hat, 0)^2`` averaged over the stacked vectors holding
        the frame (:meth:`_positive_map`), over the highest value any *training* frame reached in that
        band and its neighbours (:func:`~auscult.monitor.explain.tail_map`, unsmoothed, against
        :attr:`explain_ref`): ``1`` = as far above its reconstruction as normal training audio ever got
        there. A fault adds energy the net cannot reproduce; a frame quieter than its reconstruction
        (the gap after a normal loud event, a dip) is not a fault, and a band the net always
        reconstructs poorly is scaled by how poorly it did on normal audio. The clip score is the
        method's score (the MSE: the mean of the two-sided squared residual).

        Models saved before the reference existed explain as they did: the two-sided squared residual,
        whose mean is exactly the MSE score (a quiet frame counted like a loud one, and the machine's
        own loud events the net reconstructs poorly outshone the fault: docs/benchmarks.md, Localisation)."""
        from ..features import mel_center_frequencies
        from ..monitor.explain import tail_map

        if self.net is None:
            raise ConfigError("autoencoder: fit() or load_state_dict() before explain()")
        with nu.torch_threads(self.train_cfg["threads"]):
            feats = self.features([clip], audio)
            device = next(self.net.parameters()).device
            res = self._residuals(feats, device).double()  # [V, context * n_mels]
        n_frames = int(feats.lengths[0])
        sq = res ** 2
        if self.explain_ref is not None:
            tf = tail_map(self._positive_map(res, n_frames), *self.explain_ref, smooth=1)
            frame_scores = tf.mean(axis=0)
            how = ("squared AE reconstruction residual where the input is above its reconstruction, per frame "
                   "and mel band, over the highest a training frame reached in its band and neighbours")
        else:
            per = self._overlap_mean(sq, n_frames)  # [F, n_mels]
            tf, frame_scores = per.T.copy(), per.mean(axis=1)
            how = ("squared AE reconstruction residual per frame and mel band (averaged over the stacked "
                   "vectors containing the frame; the clip score is their mean)")
        cfg = self.feature_cfg
        spec = feats.data.numpy().T.astype(np.float64)
        if self.norm is not None:  # draw the log-mel in dB, not standardised
            spec = spec * self.norm[1].double().numpy()[:, None] + self.norm[0].double().numpy()[:, None]
        return TFMap(times=np.arange(n_frames) * cfg.hop_length / cfg.sample_rate, frame_scores=frame_scores,
                     freqs=np.asarray(mel_center_frequencies(cfg), dtype=np.float64), tf_map=tf,
                     spectrogram=spec, score=float(sq.mean()), how=how)

    def scoring_graph(self, clip: Clip) -> ScoringGraph:
        """Log-mel (conv STFT: standard ONNX ops) -> standardisation -> frame stacking -> AE ->
        the mean squared error (``score.kind: mse``) or the mean residual block (``mahalanobis``)."""
        if self.net is None:
            raise ConfigError("autoencoder: fit() or load_state_dict() before export")
        module = _AEScoreModule(self.feature_cfg, self.net, int(self.model_cfg["context"]), self.norm,
                                residual=self.score_cfg["kind"] == "mahalanobis")
        meta = {"machine": clip.machine, "section": clip.section, "domain": clip.domain}
        if self.score_cfg["kind"] == "mse":
            return ScoringGraph(module, "score", int(self.feature_cfg.sample_rate), meta=meta)
        return ScoringGraph(module, "embedding", int(self.feature_cfg.sample_rate), meta=meta,
                            backends=[{"state": backend_to_state(self.backend), "columns": [0, self.feature_cfg.n_mels]}])

    # -------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            raise ConfigError("autoencoder: nothing to save, fit() first")
        return {
            "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "input_dim": self.input_dim,
            "norm": None if self.norm is None else [self.norm[0].clone(), self.norm[1].clone()],
            "model": dict(self.model_cfg),
            "features": self.feature_cfg.to_dict() if hasattr(self.feature_cfg, "to_dict") else None,
            "score": dict(self.score_cfg),
            "backend": backend_to_state(self.backend) if self.backend is not None else None,
            **({"explain_ref": {"loc": np.asarray(self.explain_ref[0]), "scale": np.asarray(self.explain_ref[1])}}
               if self.explain_ref is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..engine.checkpoint import load_model_state

        if not isinstance(state, dict) or "net" not in state:
            from ..errors import CheckpointError

            raise CheckpointError("autoencoder: not an autoencoder state (no 'net' weights)")

        if int(state.get("input_dim", -1)) != self.input_dim:
            raise ConfigError(f"autoencoder: saved model takes {state.get('input_dim')}-d vectors, this config "
                              f"{self.input_dim}-d (n_mels x context); use the run's own config")
        net = self._build_net()
        load_model_state(net, state["net"], source="autoencoder state")
        self.net = net.to(self._device()).eval()
        self.backend = backend_from_state(state["backend"]) if state.get("backend") else None
        norm = state.get("norm")
        self.norm = None if norm is None else (norm[0].float(), norm[1].float())
        self.explain_ref = None
        ref = state.get("explain_ref")
        if ref is not None:
            from ..errors import CheckpointError

            n = int(self.feature_cfg.n_mels)
            try:
                loc, scale = (np.asarray(ref[k], dtype=np.float64) for k in ("loc", "scale"))
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"autoencoder: saved explanation reference is incomplete ({exc}); refit") from None
            if loc.shape != (n,) or scale.shape != (n,):
                raise CheckpointError(f"autoencoder: saved explanation reference has shapes {loc.shape} and "
                                      f"{scale.shape}, not ({n},) per mel band; refit")
            self.explain_ref = (loc, scale)
        if self.score_cfg["kind"] == "mahalanobis" and self.backend is None:
            raise ConfigError("autoencoder: score.kind is mahalanobis but the saved state has no back-end "
                              "(it was trained with score.kind=mse); retrain or use score.kind=mse")


class _AEScoreModule(nn.Module):
    """The autoencoder's scoring rule as one module: waveform ``[B, T]`` -> MSE score ``[B]`` (or
    the mean residual block ``[B, n_mels]`` that the selective-Mahalanobis back-end scores)."""

    def __init__(self, feature_cfg: Any, net: nn.Module, context: int, norm: Optional[tuple], residual: bool):
        super().__init__()
        from ..features import LogMel

        self.logmel = LogMel(feature_cfg.replace(stft_impl="conv")).eval()
        self.net = copy.deepcopy(net).to("cpu").eval()
        self.context = int(context)
        self.n_mels = int(feature_cfg.n_mels)
        self.residual = bool(residual)
        mean, std = (torch.zeros(self.n_mels), torch.ones(self.n_mels)) if norm is None else norm
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = (self.logmel(waveform).transpose(1, 2) - self.mean) / self.std  # [B, F, M]
        n = x.shape[1]
        c = self.context
        vec = torch.cat([x[:, j:n - (c - 1 - j)] for j in range(c)], dim=2)  # [B, V, c*M]
        flat = vec.reshape(-1, vec.shape[-1])
        res = flat - self.net(flat)
        if self.residual:
            return res.reshape(waveform.shape[0], -1, self.n_mels).mean(dim=1)
        return (res ** 2).reshape(waveform.shape[0], -1).mean(dim=1)
