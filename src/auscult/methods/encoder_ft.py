"""``encoder_ft``: the shipped encoder fine-tuned on the folder's own units as classes, then a k-NN per unit.

When a folder holds several units of a machine (DCASE sections, or one sub-folder per unit), telling
them apart is a training signal that needs no anomalies (the SSL4ASD / OS-SCL idea). This method
starts from the encoder shipped in the package (the same as ``encoder_knn``; pre-trained on
simulated machines to tell 64 units apart), continues its pre-training objective on the user's
units -- sub-cluster AdaCos over the units, with statistics exchange (:mod:`auscult.encoders.pretrain`)
-- for a few epochs, then embeds every clip with the fine-tuned encoder and fits, per unit, the
``encoder_knn`` back-end (z-scored embedding, k-NN with local-density normalisation) on that unit's
clips. A clip is scored by its own unit's back-end.

Recipe keys::

    encoder_ft: {weights: auscult-machine-v2, epochs: 5, lr: 0.0001, batch_size: 32, n_subclusters: 4,
                 statex: true, window_hop: null, folds: null}
    backend:    {name: knn_norm, normalize: local}

* One unit only: there is nothing to tell apart -- :class:`~auscult.errors.DataError` naming the
  fix (more units, or ``encoder_knn``: the same encoder, frozen). ``auscult fit --method auto`` never
  picks this method for one unit.
* Deterministic: crops, batches and the head's initialisation come from ``seed``; a fit repeated
  with the same seed gives the same weights (one torch thread).
* Resumable: with a run directory (the research door), a checkpoint after every epoch
  (``<run>/models/<group>/finetune/checkpoints/last.pt``); ``--resume`` continues from it.
* Saved as plain arrays: the fine-tuned weights (float32) and each unit's back-end; no pickle.
* Threshold: the training clips' leave-one-out back-end scores (per unit) are what a training clip
  scores; ``auscult fit`` holds recordings out for the threshold instead (the encoder has seen every
  training clip, so their leave-one-out scores are optimistic).

Measured (docs/benchmarks.md, "Fine-tuning the shipped encoder on the folder's units").
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from .base import METHODS, FitContext, Method, merge_section
from .embedding import ENCODER_KNN_DEFAULTS

__all__ = ["EncoderFTMethod", "ENCODER_FT_DEFAULTS"]

ENCODER_FT_DEFAULTS: dict[str, Any] = {"weights": ENCODER_KNN_DEFAULTS["weights"], "epochs": 5, "lr": 1e-4,
                                       "batch_size": 32, "n_subclusters": 4, "statex": True, "window_hop": None,
                                       "folds": None}


def unit_key(clip: Clip) -> str:
    """The class of a clip: its machine and section (a unit)."""
    return f"{clip.machine}/{clip.section}"


@METHODS.register("encoder_ft", defaults={"encoder_ft": ENCODER_FT_DEFAULTS},
                  description="the shipped encoder fine-tuned to tell the folder's units apart, then a k-NN with "
                              "local-density normalisation per unit (needs >= 2 units)")
class EncoderFTMethod(Method):
    """See the module docstring."""

    name = "encoder_ft"
    capabilities = frozenset({"embed"})
    classes = "section"
    one_class = "refuse"
    backend_default: dict[str, Any] = {"name": "knn_norm", "normalize": "local"}

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        o = self.opts = merge_section(ENCODER_FT_DEFAULTS, config.get(self.name), self.name)
        for k in ("epochs", "batch_size", "n_subclusters"):
            if isinstance(o[k], bool) or not isinstance(o[k], int) or o[k] < (0 if k == "epochs" else 1):
                raise ConfigError(f"{self.name}.{k} must be an integer >= {0 if k == 'epochs' else 1}, got {o[k]!r}")
        if not isinstance(o["lr"], (int, float)) or isinstance(o["lr"], bool) or not 0 < float(o["lr"]) < 1:
            raise ConfigError(f"{self.name}.lr must be a number in (0, 1), got {o['lr']!r}")
        if not isinstance(o["statex"], bool):
            raise ConfigError(f"{self.name}.statex must be true or false, got {o['statex']!r}")
        folds = o.get("folds")
        if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
            raise ConfigError(f"{self.name}.folds must be null (leave-one-out) or an integer >= 2, got {folds!r}")
        # the config this method saves (bundles) names the encoder: a later default cannot change what a
        # saved model means
        self.config = {**dict(config), self.name: dict(o)}
        self.backend = {**self.backend_default, **dict(config.get("backend") or {})}
        self.backend.pop("group_by", None)
        self.encoder = self._frozen_encoder()
        if self.encoder.sample_rate != self.sample_rate:
            raise ConfigError(f"{self.name}: the encoder works at {self.encoder.sample_rate} Hz but audio.sample_rate is "
                              f"{self.sample_rate}; set audio.sample_rate: {self.encoder.sample_rate}")
        self.detectors: dict[str, Any] = {}
        self.train_paths: list[str] = []
        self.train_units: list[str] = []
        self.history: list[dict[str, Any]] = []

    def _frozen_encoder(self):
        from ..encoders import build_encoder

        spec: dict[str, Any] = {"name": "cnn", "weights": str(self.opts["weights"])}
        if self.opts.get("window_hop") is not None:
            spec["window_hop"] = int(self.opts["window_hop"])
        return build_encoder(spec)

    @property
    def min_samples(self) -> int:
        return int(self.encoder.feature_cfg.n_fft)

    @property
    def feature_config(self) -> Any:
        return self.encoder.feature_cfg

    # ---- fit ---------------------------------------------------------------------------------
    def _waves(self, clips: Sequence[Clip], audio: Any) -> list[np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32) for w in audio.load_many(list(clips))]
        for c, w in zip(clips, waves):
            if w.ndim != 1:
                raise DataError(f"{c.path}: {self.name} takes mono audio (audio.channel: mean), got shape {w.shape}")
            if w.shape[0] < self.min_samples:
                raise DataError(f"{c.path}: {w.shape[0]} samples, shorter than one analysis window ({self.min_samples}); "
                                f"use longer clips")
        return waves

    def _logmels(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per clip, the encoder's log-mel ``[M, F]`` with the clip mean removed, tiled to at least a crop."""
        import torch

        enc, out = self.encoder, []
        with torch.no_grad():
            for w in waves:
                lm = enc.fe(torch.from_numpy(np.ascontiguousarray(w))[None])
                lm = lm - lm.mean(dim=(1, 2), keepdim=True)
                f = lm.shape[-1]
                if f < enc.crop:
                    lm = lm.repeat(1, 1, -(-enc.crop // f))[..., :enc.crop]
                out.append(lm[0].numpy().astype(np.float32))
        return out

    def _finetune(self, mels: list[np.ndarray], y: np.ndarray, n_classes: int) -> None:
        """Continue the encoder's pre-training objective on the units (in place on ``self.encoder.net``)."""
        import torch

        from ..augment.exchange import with_statistics_exchange
        from ..engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
        from ..losses.adacos import SubClusterAdaCos
        from ._neural import stage_run_dir

        o, seed = self.opts, int(self.context.seed)
        enc = self.encoder
        net = copy.deepcopy(enc.net)
        torch.manual_seed(seed)
        head = SubClusterAdaCos(enc.dim, n_classes * (3 if o["statex"] else 1), int(o["n_subclusters"]), seed=seed)
        opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=float(o["lr"]), weight_decay=1e-4)
        run = stage_run_dir(self.context, "finetune")
        ck = None if run is None else Path(run.checkpoints) / "last.pt"
        # what the checkpoint must match to be continued (``epochs`` may grow: the schedule is constant)
        fingerprint = {"opts": {k: o[k] for k in sorted(o) if k != "epochs"}, "classes": int(n_classes),
                       "clips": len(mels), "frames": int(sum(m.shape[-1] for m in mels))}
        start, history = 0, []
        if ck is not None and ck.is_file():
            if not getattr(self.context, "resume", False):
                raise ConfigError(f"{ck}: a fine-tuning checkpoint exists; continue it with --resume or use another "
                                  f"run directory")
            state = load_checkpoint(ck)
            if state.get("fingerprint") != fingerprint:
                raise CheckpointError(f"{ck} was written for other settings or data ({state.get('fingerprint')}); "
                                      f"delete it or use another run directory")
            net.load_state_dict(state["model"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["optimizer"])
            restore_rng_state(state["rng"])
            start, history = int(state["epoch"]), list(state["history"])
            if start > int(o["epochs"]):
                raise CheckpointError(f"{ck} holds {start} epochs, more than {self.name}.epochs={o['epochs']}; raise "
                                      f"epochs or use another run directory")
        crop, bs = enc.crop, int(o["batch_size"])
        for epoch in range(start, int(o["epochs"])):
            rng = np.random.default_rng([seed, epoch])  # the epoch's crops and order: the same after a resume
            net.train()
            head.train()
            t0 = time.perf_counter()
            order = rng.permutation(len(mels))
            tot, seen = 0.0, 0
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                if len(idx) < 2:
                    continue
                xb = torch.from_numpy(np.stack([
                    mels[i][:, o0:o0 + crop] for i, o0 in
                    zip(idx, [int(rng.integers(0, mels[i].shape[-1] - crop + 1)) for i in idx])]))
                yb = torch.from_numpy(y[idx])
                if o["statex"]:
                    xb, yb = with_statistics_exchange(xb, yb, n_classes=n_classes, p=0.5)
                loss = head(net(xb[:, None]), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(idx)
                seen += len(idx)
            history.append({"epoch": epoch + 1, "loss": tot / max(seen, 1), "seconds": round(time.perf_counter() - t0, 2)})
            if ck is not None:
                save_checkpoint(ck, {"model": net.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                                     "rng": capture_rng_state(), "epoch": epoch + 1, "history": history,
                                     "fingerprint": fingerprint})
        enc.net = net.eval()
        self.history = history

    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "EncoderFTMethod":
        """Fine-tune on the training clips' units, then fit each unit's back-end on its clips."""
        from ..encoders import EmbeddingDetector

        train = list(train)
        keys = [unit_key(c) for c in train]
        units = sorted(set(keys))
        if len(units) < 2:
            raise DataError(f"{self.name} fine-tunes the encoder to tell the folder's units apart, and the training clips "
                            f"hold a single unit ({units[0] if units else 'none'}): nothing to tell apart. Add recordings "
                            f"of other units of the machine (DCASE sections, or one sub-folder per unit), or use "
                            f"--method encoder_knn (the same encoder, frozen) or --method auto")
        waves = self._waves(train, audio)
        self.encoder = self._frozen_encoder()  # a repeated fit starts from the shipped weights again
        y = np.array([units.index(k) for k in keys], dtype=np.int64)
        if int(self.opts["epochs"]) > 0:
            self._finetune(self._logmels(waves), y, len(units))
        x = self.encoder.embed(waves)
        recording_of = dict(self.context.extra.get("recording_of") or {})
        self.detectors = {}
        for j, u in enumerate(units):
            rows = np.flatnonzero(y == j)
            det = EmbeddingDetector(self.encoder, backend=self.backend, standardize=True, folds=self.opts["folds"],
                                    seed=int(self.context.seed))
            try:
                det.fit_embeddings(x[rows], groups=[recording_of.get(str(train[i].path), str(train[i].path))
                                                    for i in rows])
            except DataError as exc:
                raise DataError(f"{self.name}: unit {u} ({len(rows)} training clips): {exc}") from None
            self.detectors[u] = det
        self.train_paths = [str(c.path) for c in train]
        self.train_units = keys
        return self

    # ---- score -------------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.detectors:
            raise ConfigError(f"{self.name}: call fit() (or load_state_dict()) before score()")

    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """The fine-tuned encoder's clip vectors ``[N, dim]`` (before a unit's standardisation)."""
        clips = list(clips)
        return self.encoder.embed(self._waves(clips, audio)) if clips else np.zeros((0, 0))

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Each clip by its own unit's back-end; a training clip gets its leave-one-out score."""
        self._check()
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        unknown = sorted({unit_key(c) for c in clips} - set(self.detectors))
        if unknown:
            raise DataError(f"{self.name}: clips of unit(s) {unknown} (e.g. {next(c.path for c in clips if unit_key(c) in unknown)}) "
                            f"were not among the training units {sorted(self.detectors)}; fit a model that includes "
                            f"them")
        x = self.embed(clips, audio)
        s = np.empty(len(clips), dtype=np.float64)
        for u, det in self.detectors.items():
            rows = [i for i, c in enumerate(clips) if unit_key(c) == u]
            if rows:
                s[rows] = det.score_embeddings(x[rows])
        return self._with_training_scores(clips, s)

    def _with_training_scores(self, clips: Sequence[Clip], s: np.ndarray) -> np.ndarray:
        for i, c in enumerate(clips):
            hit = self._train_index.get(str(c.path))
            if hit is not None:
                u, j = hit
                s[i] = float(self.detectors[u].normal_scores_[j])
        return s

    @property
    def _train_index(self) -> dict[str, tuple[str, int]]:
        """Training clip path -> (unit, row within the unit's back-end)."""
        cached = getattr(self, "_train_index_cache", None)
        if cached is not None and cached[0] == len(self.train_paths):
            return cached[1]
        counts: dict[str, int] = {}
        out = {}
        for p, u in zip(self.train_paths, self.train_units):
            out[p] = (u, counts.get(u, 0))
            counts[u] = counts.get(u, 0) + 1
        self._train_index_cache = (len(self.train_paths), out)
        return out

    def reference_scores(self) -> np.ndarray:
        """The training clips' leave-one-out back-end scores, in training order."""
        self._check()
        idx = self._train_index
        return np.array([self.detectors[idx[p][0]].normal_scores_[idx[p][1]] for p in self.train_paths])

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check()
        return {"method": self.name, "version": 1, "weights": str(self.opts["weights"]),
                "net": {k: v.detach().cpu().numpy().astype(np.float32) if v.is_floating_point() else v.cpu().numpy()
                        for k, v in self.encoder.net.state_dict().items()},
                "units": [{"unit": u, "detector": d.config(), "arrays": {k: np.asarray(v) for k, v in d.state().items()}}
                          for u, d in self.detectors.items()],
                "train_paths": list(self.train_paths), "train_units": list(self.train_units),
                "history": json.loads(json.dumps(self.history))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        from ..encoders import EmbeddingDetector

        if not isinstance(state, dict) or state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method') if isinstance(state, dict) else None!r}, "
                                  f"not {self.name!r}")
        if state.get("weights") != str(self.opts["weights"]):
            raise CheckpointError(f"{self.name}: the saved model was fine-tuned from {state.get('weights')!r}, the recipe "
                                  f"names {self.opts['weights']!r}")
        try:
            net_state = {k: torch.from_numpy(np.array(v)) for k, v in dict(state["net"]).items()}
            missing, unexpected = self.encoder.net.load_state_dict(net_state, strict=False)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.name}: the saved weights do not fit the encoder ({exc}); refit") from None
        if missing or unexpected:
            raise CheckpointError(f"{self.name}: the saved weights do not fit the encoder (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}); refit")
        self.encoder.net.eval()
        dets = {}
        for row in state["units"]:
            det = EmbeddingDetector.from_saved(dict(row["detector"]), dict(row["arrays"]))
            det.encoder = self.encoder
            dets[str(row["unit"])] = det
        self.detectors = dets
        self.train_paths = [str(p) for p in state.get("train_paths", [])]
        self.train_units = [str(u) for u in state.get("train_units", [])]
        self.history = list(state.get("history", []))

    def describe(self) -> str:
        n = sum(0 if d.normal_scores_ is None else len(d.normal_scores_) for d in self.detectors.values())
        return (f"{self.name} ({self.opts['weights']} fine-tuned {self.opts['epochs']} epochs on {len(self.detectors)} "
                f"units as classes; {self.backend['name']} per unit on {n} training clips)")
