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
               patience: null, log_every: 50, checkpoint_every_steps: null, device: auto, threads: 1}

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

from typing import Any, Optional, Sequence

import numpy as np

from ..data.clip import Clip
from ..errors import ConfigError, DataError
from ._neural import torch_threads as _torch_threads
from .base import METHODS, FitContext, Method, backend_from_state, backend_to_state, section_of

MODEL_KEYS = {"context": 5, "hidden": 128, "bottleneck": 8, "n_layers": 4, "normalize": False}
TRAIN_KEYS = {"epochs": 100, "batch_size": 512, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
              "patience": None, "log_every": 50, "checkpoint_every_steps": None, "device": "auto",
              "amp": "off", "threads": 1}
SCORE_KEYS = {"kind": "mse", "shrinkage": "none", "group_by": "section", "batch_clips": 16}
SCORE_KINDS = ("mse", "mahalanobis")


def _merged(config: dict[str, Any], key: str, defaults: dict[str, Any], allow_extra: bool = False) -> dict[str, Any]:
    given = section_of(config, key)
    unknown = sorted(set(given) - set(defaults))
    if unknown and not allow_extra:
        raise ConfigError(f"autoencoder: unknown {key} setting(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


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


class _KeepBest:
    """Trainer callback: a copy of the weights of the best validation epoch (runs without a run dir)."""

    def __init__(self):
        self.state = None

    def on_epoch_end(self, trainer, record) -> None:
        if trainer.best_epoch is not None and trainer.best_epoch == record.get("epoch"):
            self.state = {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}


class _Indices:
    """A map-style dataset of vector indices (the DataLoader shuffles them; the step gathers)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@METHODS.register("autoencoder", description="DCASE baseline: dense AE on stacked log-mel frames; MSE or selective Mahalanobis")
class AutoencoderMethod(Method):
    """The DCASE autoencoder baseline (see the module docstring for the recipe keys)."""

    name = "autoencoder"

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        from ..features import FeatureConfig

        self.model_cfg = _merged(config, "model", MODEL_KEYS)
        self.train_cfg = _merged(config, "train", TRAIN_KEYS)
        self.score_cfg = _merged(config, "score", SCORE_KEYS)
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

    # -------------------------------------------------------------------- pieces
    @property
    def input_dim(self) -> int:
        return self.feature_cfg.n_mels * self.model_cfg["context"]

    def _device(self):
        from ..engine import resolve_device

        # an explicit device (CLI --device cuda, FitContext(device="cpu")) wins over the recipe's train.device
        dev = self.context.device
        return resolve_device(self.train_cfg["device"] if dev in (None, "", "auto") else dev)

    def _build_net(self):
        from ..nets import NETS

        return NETS.build("autoencoder", input_dim=self.input_dim, hidden=self.model_cfg["hidden"],
                          bottleneck=self.model_cfg["bottleneck"], n_layers=self.model_cfg["n_layers"])

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
        with torch.no_grad():
            for i in range(0, len(clips), bs):
                waves = audio.load_many(clips[i:i + bs])
                if len({w.shape[0] for w in waves}) == 1:
                    lm = fe(torch.from_numpy(np.stack(waves)))
                    mats.extend(m.transpose(0, 1).contiguous() for m in lm)
                else:
                    mats.extend(fe(torch.from_numpy(w)[None])[0].transpose(0, 1).contiguous() for w in waves)
        if self.norm is not None:
            mean, std = self.norm
            mats = [(m - mean) / std for m in mats]
        return _Features(mats, self.model_cfg["context"])

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
        with _torch_threads(self.train_cfg["threads"]):
            return self._fit(train, val, audio)

    def _fit(self, train: Sequence[Clip], val: Sequence[Clip], audio) -> "AutoencoderMethod":
        import torch

        from ..engine import (RunDir, TrainConfig, Trainer, build_optimizer, config_hash, load_trained_model,
                              seed_everything)

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
            d = tr_feats.data.double()
            self.norm = (d.mean(0).float(), d.std(0).clamp_min(1e-3).float())
            tr_feats.data = ((tr_feats.data - self.norm[0]) / self.norm[1]).contiguous()
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
                          patience=tc["patience"], resume=bool(ctx.resume) and run is not None,
                          config_hash=config_hash(hash_src), quiet=True if ctx.quiet else None)
        keep = _KeepBest()
        trainer = Trainer(self.net, step_fn, loader, opt, None, cfg, run_dir=run, val_fn=val_fn, callbacks=[keep])
        self.history = trainer.fit()
        # model selection on the held-out training normals: back to the best epoch's weights
        if run is not None and val_fn is not None and (run.checkpoints / "best.pt").exists():
            load_trained_model(self.net, run.checkpoints / "best.pt", use_ema=False)
        elif val_fn is not None and keep.state is not None:
            self.net.load_state_dict(keep.state)
        self.net = self.net.to(device).eval()
        self.best_epoch = trainer.best_epoch
        del data
        if self.score_cfg["kind"] == "mahalanobis":
            self._fit_backend(train + val, audio, device)
        return self

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
        with _torch_threads(self.train_cfg["threads"]):
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
        with _torch_threads(self.train_cfg["threads"]):
            return self.residual_summary(list(clips), audio)[1]

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
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..engine.checkpoint import load_model_state

        if int(state.get("input_dim", -1)) != self.input_dim:
            raise ConfigError(f"autoencoder: saved model takes {state.get('input_dim')}-d vectors, this config "
                              f"{self.input_dim}-d (n_mels x context); use the run's own config")
        net = self._build_net()
        load_model_state(net, state["net"], source="autoencoder state")
        self.net = net.to(self._device()).eval()
        self.backend = backend_from_state(state["backend"]) if state.get("backend") else None
        norm = state.get("norm")
        self.norm = None if norm is None else (norm[0].float(), norm[1].float())
        if self.score_cfg["kind"] == "mahalanobis" and self.backend is None:
            raise ConfigError("autoencoder: score.kind is mahalanobis but the saved state has no back-end "
                              "(it was trained with score.kind=mse); retrain or use score.kind=mse")
