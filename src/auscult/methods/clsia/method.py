"""CLSIA: contrastive learning with spectrum information augmentation (MoCo on log-mel views).

Views (training only; :class:`CLSIAViews`): each clip's log-mel is pre-normalised with statistics
of the training set, mixed with a random past input by log-mixup-exp against a FIFO memory bank
(``lam ~ U(0, alpha)``, ``alpha = 0.4``), randomly resized-cropped and post-normalised (per batch).
Two independent views of a clip differ most in the detail the mix and the frequency stretch
change: fine high-frequency structure.

Contrast (``mode: moco``; :class:`MoCo`, :func:`contrastive_loss`): the query encoder (net +
projection MLP) is trained by back-propagation on view 1; the key encoder is a copy that never
receives gradients and follows ``theta_k <- m theta_k + (1 - m) theta_q`` (``m = 0.99``) on view 2.
Keys carry a label and go into a FIFO queue (labels alongside, :class:`LabelledKeyQueue`). The loss
is InfoNCE with temperature ``tau`` over the batch's keys and the queue, with every key of the
anchor's label counted as a positive:

* ``positives: section`` (default): positives are views of clips of the same section (across
  domains); negatives are keys of clips of *other sections of the same machine type*
  (``negatives: same_machine``; ``any`` takes any other section in the fitted group);
* with ``per_section: true`` (the DCASE 2020 recipe: one model per machine ID) every section of the
  group gets its own model, trained with that section's clips as anchors and the other sections'
  clips as negatives (they only pass through the key encoder). Fit the group per machine type
  (``model_per: machine``) so the other IDs are there;
* a group with no other section to contrast against falls back to instance discrimination
  (positive = the other view of the same clip, negatives = everything else), which is also
  ``positives: instance``.

Fine-tuning (``mode: finetune``, the DCASE 2022 recipe): a section x attribute classifier
(ArcFace head) on the same views, initialised from an instance-discrimination pre-training
checkpoint (``clsia.pretrained``, written by ``auscult pretrain FOLDER``; see
:mod:`auscult.methods.clsia.pretrain`).

Score: distance in embedding space (encoder output, before the projection head): by default the
Euclidean distance to the nearest training embedding of the clip's section (``knn``, k = 1,
min over source and target); any back-end can be set under ``backend:``. Before embedding, the
encoder's batch-norm running statistics are re-estimated on the training clips
(``recalibrate_bn``; :meth:`CLSIA._recalibrate_bn` says why).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ...data.clip import Clip
from ...errors import CheckpointError, ConfigError, DataError
from ...losses.heads import ProjectionMLP
from ...nets import NETS
from .. import _neural as nu
from ..base import METHODS, Method, ScoringGraph, backend_to_state, merge_section
from .model import (AUGMENT_DEFAULTS, AnchorNegativeDataset, Classifier, CLSIAViews, LabelledKeyQueue, MoCo,
                    collate_views, moco_step)

log = logging.getLogger("auscult.methods.clsia")

#: defaults of the recipe's ``clsia:`` section
CLSIA_DEFAULTS: dict[str, Any] = {
    "mode": "moco",              # moco | finetune
    "per_section": True,         # one model per section of the group (moco)
    "positives": "section",      # section | instance
    "negatives": "same_machine",  # same_machine | any
    "momentum": 0.99,
    "queue_size": 4096,
    "temperature": 0.07,
    "proj_dim": 128,
    "proj_hidden": 512,
    "pretrained": None,          # finetune: checkpoint of `auscult pretrain`
    "pretrain": {"folder": None, "out": None, "net": None, "epochs": 100, "batch_size": 32, "lr": 1e-3,
                 "queue_size": 4096},  # finetune: run the pre-training stage first (when pretrained is null)
    "arcface_scale": 30.0,       # finetune head
    "arcface_margin": 0.5,
    "embed_batch_size": 64,
    "recalibrate_bn": True,      # re-estimate BN running statistics on the training clips after training
}
BACKEND_DEFAULT = {"name": "knn", "k": 1, "metric": "euclidean", "group_by": "section"}


@METHODS.register("clsia", defaults={"clsia": CLSIA_DEFAULTS, "augment": AUGMENT_DEFAULTS, "net": None, "train": None},
                  description="CLSIA: MoCo contrastive learning on log-mixup-exp / random-resized-crop log-mel views; "
                              "kNN distance in embedding space")
class CLSIA(Method):
    """CLSIA (see the module docstring). Recipe sections: ``features``, ``net``, ``augment``,
    ``train``, ``clsia``, ``backend``.

    Capabilities: ``embed`` (encoder embeddings), ``export`` (front-end, pre-normalisation and the
    section's encoder in one graph; the kNN back-end scores the embedding)."""

    name = "clsia"
    capabilities = frozenset({"embed", "export"})
    fixed_length = True
    classes = "section"
    one_class = ("falls back to instance discrimination (the positive is the other view of the same clip, every "
                 "other clip a negative)")
    #: ``auscult fit``: recipes/synthetic/clsia.yaml's CPU budget; every other unit of the folder is a negative
    fit_defaults = {
        "features": {"frontend": "logmel", "n_mels": 64, "stft_precision": "float32"},
        "net": {"name": "mobilefacenet", "activation": "relu", "emb_dim": 128},
        "augment": {"logmixupexp": {"alpha": 0.4, "bank_size": 512},
                    "rrc": {"freq_scale": [0.9, 1.1], "time_scale": [0.8, 1.2], "canvas_scale": [1.0, 1.2]}},
        "train": {"epochs": 10, "batch_size": 16, "optimizer": "adam", "lr": 0.001, "log_every": 10, "threads": 1},
        "clsia": {"mode": "moco", "per_section": True, "positives": "section", "negatives": "any", "momentum": 0.9,
                  "queue_size": 256, "temperature": 0.07, "recalibrate_bn": True},
        "backend": {"name": "knn", "k": 1, "metric": "euclidean", "group_by": "section"},
    }

    def __init__(self, config: dict[str, Any], context: Any = None):
        super().__init__(config, context)
        self.opts = merge_section(CLSIA_DEFAULTS, config.get("clsia"), "clsia")
        self.aug = merge_section(AUGMENT_DEFAULTS, config.get("augment"), "augment")
        if self.opts["mode"] not in ("moco", "finetune"):
            raise ConfigError(f"clsia.mode must be 'moco' or 'finetune', got {self.opts['mode']!r}")
        if self.opts["positives"] not in ("section", "instance"):
            raise ConfigError(f"clsia.positives must be 'section' or 'instance', got {self.opts['positives']!r}")
        if self.opts["negatives"] not in ("same_machine", "any"):
            raise ConfigError(f"clsia.negatives must be 'same_machine' or 'any', got {self.opts['negatives']!r}")
        net = dict(config.get("net") or {"name": "mobilefacenet"})
        self.net_name = str(net.pop("name", "mobilefacenet"))
        self.net_kwargs = net
        NETS.get(self.net_name)  # typed error for unknown nets
        nu.check_net_kwargs(self.net_name, self.net_kwargs)  # and for settings it does not take
        self.frontend = nu.build_frontend_from_recipe(config.get("features"))
        self.backend_cfg = {**BACKEND_DEFAULT, **dict(config.get("backend") or {})}
        self.threads = nu.split_train_section(config.get("train"), self.context)[2]["threads"]  # validates too
        self.n_samples: Optional[int] = None
        self.models: dict[str, dict[str, Any]] = {}  # section key -> {"encoder": nn.Module, "prenorm": (m, s)}
        self.classes: list[str] = []
        self.train_embeddings: Optional[np.ndarray] = None
        self.train_meta: list[dict[str, Any]] = []
        self.backend = None
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.selected: dict[str, str] = {}  # section key -> the weights kept (with held-out clips)

    # ---- building blocks ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        from ...engine.runtime import resolve_device

        return resolve_device(str(self.context.device))

    def _build_encoder(self) -> nn.Module:
        assert self.n_samples is not None
        return nu.build_net(self.net_name, self.net_kwargs, nu.geometry(self.config, self.frontend, self.n_samples))

    def _views(self) -> CLSIAViews:
        lme, rrc = self.aug["logmixupexp"], self.aug["rrc"]
        return CLSIAViews(alpha=float(lme.get("alpha", 0.4)), bank_size=int(lme.get("bank_size", 2048)),
                          freq_scale=rrc.get("freq_scale", (0.6, 1.5)), time_scale=rrc.get("time_scale", (0.6, 1.5)),
                          canvas_scale=rrc.get("canvas_scale", (1.0, 1.5)))

    @staticmethod
    def section_key(clip: Clip) -> str:
        return f"{clip.machine}/{clip.section}"

    def _feature_stats(self, clips: Sequence[Clip], audio: Any) -> tuple[float, float]:
        """Mean and std of the log-mel over the training clips (the pre-normalisation)."""
        fe = self.frontend.to(self.device)
        return nu.feature_stats(fe, clips, audio, int(self.opts["embed_batch_size"]), self.device)

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "CLSIA":
        """Train on ``train``. Held-out training normals ``val`` (the recipe's ``data.holdout``; none
        in the paper's recipes: a fixed schedule) give the contrastive stage a stop rule: after every
        epoch, ``val_loss`` = the contrastive loss of the held-out clips of the section (two views
        drawn by a fixed-seed generator, so every epoch sees the same views; keys from the key encoder;
        the batch's and the queue's keys, queue unchanged) is recorded in the history; the epoch with
        the lowest one is kept and ``train.patience`` epochs without improvement stop the training."""
        with nu.torch_threads(self.threads):
            return self._fit(train, val, audio)

    def _fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "CLSIA":
        train, val = list(train), list(val)
        self.n_samples = nu.start_fit("clsia", train, audio, seed=int(self.context.seed))
        self.models, self.history, self.selected = {}, {}, {}
        keys = sorted({self.section_key(c) for c in train})
        if self.opts["mode"] == "finetune":
            self._fit_finetune(train, audio)
        elif self.opts["per_section"]:
            for key in keys:
                anchors = [c for c in train if self.section_key(c) == key]
                machine = anchors[0].machine
                pool = [c for c in train if self.section_key(c) != key
                        and (self.opts["negatives"] == "any" or c.machine == machine)]
                self._fit_moco(key, anchors, pool, audio, [c for c in val if self.section_key(c) == key])
        else:
            self._fit_moco("*", train, [], audio, val)
        self._fit_backend(train, audio)
        return self

    def _labels(self, anchors: Sequence[Clip], pool: Sequence[Clip]) -> tuple[list[int], list[int], str]:
        anchor_keys = sorted({self.section_key(c) for c in anchors})
        pool_keys = sorted({self.section_key(c) for c in pool} - set(anchor_keys))
        if self.opts["positives"] == "instance" or (len(anchor_keys) == 1 and not pool_keys):
            lab = {k: len(anchors) + i for i, k in enumerate(pool_keys)}
            return list(range(len(anchors))), [lab[self.section_key(c)] for c in pool], "instance"
        table = {k: i for i, k in enumerate(anchor_keys + pool_keys)}
        return ([table[self.section_key(c)] for c in anchors], [table[self.section_key(c)] for c in pool], "section")

    def _fit_moco(self, key: str, anchors: Sequence[Clip], pool: Sequence[Clip], audio: Any,
                  val: Sequence[Clip] = ()) -> None:
        from ...engine.trainer import Trainer

        if len(anchors) < 2:
            raise DataError(f"clsia: section {key} has {len(anchors)} training clip(s); need at least 2 "
                            "(or set clsia.per_section: false)")
        tcfg, ocfg, ld = nu.split_train_section(self.config.get("train"), self.context)
        y_anchor, y_pool, kind = self._labels(anchors, pool)
        log.info("clsia %s: %d anchors, %d negative clips, positives by %s", key, len(anchors), len(pool), kind)
        views = self._views()
        views.prenorm.set_stats(*self._feature_stats(anchors, audio))
        encoder = self._build_encoder()
        dim = int(encoder.output_shape[0])
        head = ProjectionMLP(dim, int(self.opts["proj_hidden"]), int(self.opts["proj_dim"]), n_layers=2)
        model = MoCo(encoder, head, float(self.opts["momentum"]))
        queue = LabelledKeyQueue(int(self.opts["proj_dim"]), int(self.opts["queue_size"]),
                                 float(self.opts["temperature"]), seed=int(self.context.seed))
        ds = AnchorNegativeDataset(anchors, y_anchor, audio, pool, y_pool, seed=int(self.context.seed))
        bs = min(int(ld["batch_size"]), len(anchors))
        loader = nu.loader_for(ds, bs, shuffle=True, drop_last=len(anchors) % bs == 1 or len(anchors) > bs,
                               num_workers=ld["num_workers"], collate_fn=collate_views)
        loader.sampler.set_epoch = ds.set_epoch  # type: ignore[attr-defined]  (fresh negatives per epoch)
        fe = self.frontend.to(self.device)
        views = views.to(self.device)
        queue = queue.to(self.device)

        def step_fn(batch, net, state):
            return {"loss": moco_step(getattr(net, "module", net), views, queue, fe, batch)}

        val_fn = self._val_fn(list(val), anchors, y_anchor, kind, audio, views, queue, fe, bs)
        opt_params = [p for p in model.parameters() if p.requires_grad]
        from ...engine.optim import build_optimizer

        opt = build_optimizer(opt_params, ocfg)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        stage = nu.stage_run_dir(self.context, "clsia_" + key.replace("/", "_").replace("*", "all"))
        best = nu.BestWeights()
        trainer = Trainer(model, step_fn, loader, opt, sched, tcfg, run_dir=stage, val_fn=val_fn,
                          extra_state={"views": views, "queue": queue}, callbacks=[best])
        self.history[key] = trainer.fit()
        if val_fn is not None:
            self.selected[key] = nu.restore_selected(model, trainer, best, stage, use_ema=False)
            log.info("clsia %s: encoder of %s (val_loss on %d held-out clips)", key, self.selected[key], len(val))
        model.eval()
        self.models[key] = {"encoder": model.encoder, "prenorm": (float(views.prenorm.mean), float(views.prenorm.var.sqrt()))}
        if self.opts["recalibrate_bn"]:
            self._recalibrate_bn(key, anchors, audio, bs)

    def _val_fn(self, val: list[Clip], anchors: Sequence[Clip], y_anchor: Sequence[int], kind: str, audio: Any,
                views: CLSIAViews, queue: LabelledKeyQueue, fe: nn.Module, bs: int) -> Any:
        """``val_fn`` for the trainer: the held-out clips' contrastive loss (see :meth:`fit`), or ``None``."""
        from .model import contrastive_loss

        if not val:
            return None
        wave = audio.batch(val)
        if kind == "instance":  # every held-out clip is its own instance: labels no key carries
            labels = torch.arange(len(val), dtype=torch.long) + 1_000_000
        else:
            lab = {self.section_key(c): int(y) for c, y in zip(anchors, y_anchor)}
            labels = torch.as_tensor([lab[self.section_key(c)] for c in val], dtype=torch.long)
        seed = int(self.context.seed)

        @torch.no_grad()
        def val_fn(model, state):
            model = getattr(model, "module", model)
            gen = torch.Generator().manual_seed(seed)  # the same views every epoch
            total = 0.0
            for i in range(0, len(val), bs):
                x = views.normalize(fe(wave[i:i + bs].to(self.device)))
                v1, v2 = views.view(x, gen), views.view(x, gen)
                q, k = model.query(v1.unsqueeze(1)), model.key(v2.unsqueeze(1))
                y = labels[i:i + bs].to(self.device)
                own = torch.arange(q.shape[0], device=q.device)
                total += float(contrastive_loss(q, y, k, y, queue, own=own)) * q.shape[0]
            return {"val_loss": total / len(val)}

        return val_fn

    def _pretrain_stage(self, audio: Any) -> Optional[str]:
        """The recipe's pre-training stage (``clsia.pretrain.folder``): run once per run, reused by
        every group (written next to the groups' folders unless ``pretrain.out`` is set)."""
        from pathlib import Path

        from .pretrain import pretrain

        st = self.opts["pretrain"]
        if not st.get("folder"):
            log.warning("clsia finetune without pre-trained weights (clsia.pretrained and clsia.pretrain.folder "
                        "are empty): training the classifier from scratch")
            return None
        if st.get("out"):
            out = Path(st["out"])
        elif self.context.run_dir is not None:
            out = Path(self.context.run_dir).parent / "clsia_pretrain" / "encoder.pt"
        else:
            raise ConfigError("clsia.pretrain.folder is set but there is no run directory to write the weights to; "
                              "set clsia.pretrain.out")
        if not out.is_file():
            feats = {k: v for k, v in dict(self.config.get("features") or {}).items() if k != "frontend"}
            pretrain(st["folder"], out, net=st.get("net") or self.net_name, net_kwargs=self.net_kwargs,
                     features=feats, duration=self.n_samples / audio.sample_rate, sample_rate=audio.sample_rate,
                     epochs=int(st["epochs"]), batch_size=int(st["batch_size"]), lr=float(st["lr"]),
                     queue_size=int(st["queue_size"]), momentum=float(self.opts["momentum"]),
                     temperature=float(self.opts["temperature"]), augment=self.config.get("augment"),
                     seed=int(self.context.seed), device=str(self.context.device), resume=True,
                     quiet=bool(self.context.quiet))
        return str(out)

    def _fit_finetune(self, train: Sequence[Clip], audio: Any) -> None:
        from ...engine.checkpoint import load_model_state
        from ...engine.optim import build_optimizer
        from ...engine.trainer import Trainer
        from ...losses import LOSSES
        from ...data.datasets import ClipDataset

        tcfg, ocfg, ld = nu.split_train_section(self.config.get("train"), self.context)
        self.classes = sorted({f"{c.machine}/{c.section}/{c.attribute_key}" for c in train})
        cid = {k: i for i, k in enumerate(self.classes)}
        targets = [cid[f"{c.machine}/{c.section}/{c.attribute_key}"] for c in train]
        views = self._views()
        encoder = self._build_encoder()
        pretrained = self.opts["pretrained"] or self._pretrain_stage(audio)
        if pretrained:
            from .pretrain import load_pretrained

            ck = load_pretrained(pretrained)
            if ck["net"] != self.net_name:
                raise CheckpointError(
                    f"{pretrained}: pre-trained encoder is {ck['net']!r} but net.name is "
                    f"{self.net_name!r}; pre-train the same architecture (auscult pretrain --net {self.net_name})")
            load_model_state(encoder, ck["encoder"], source=pretrained)
        views.prenorm.set_stats(*self._feature_stats(train, audio))
        dim = int(encoder.output_shape[0])
        head = LOSSES.build("arcface", emb_dim=dim, n_classes=len(self.classes),
                            scale=float(self.opts["arcface_scale"]), margin=float(self.opts["arcface_margin"]))
        model = Classifier(encoder, head)
        ds = ClipDataset(train, audio, targets=targets)
        bs = min(int(ld["batch_size"]), len(train))
        loader = nu.loader_for(ds, bs, shuffle=True, drop_last=len(train) > bs, num_workers=ld["num_workers"])
        fe = self.frontend.to(self.device)
        views = views.to(self.device)

        def step_fn(batch, net, state):
            net = getattr(net, "module", net)
            x, y, _ = batch
            with torch.no_grad():
                f = views.normalize(fe(x))
                (v,) = views.views(f, 1)
            loss = net.head(net.encoder(v.unsqueeze(1)), y)
            return {"loss": loss}

        opt = build_optimizer(model, ocfg)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        trainer = Trainer(model, step_fn, loader, opt, sched, tcfg, run_dir=nu.stage_run_dir(self.context, "clsia_finetune"),
                          extra_state={"views": views})
        self.history["*"] = trainer.fit()
        model.eval()
        self.models["*"] = {"encoder": encoder, "prenorm": (float(views.prenorm.mean), float(views.prenorm.var.sqrt()))}
        if self.opts["recalibrate_bn"]:
            self._recalibrate_bn("*", train, audio, bs)

    def _recalibrate_bn(self, key: str, clips: Sequence[Clip], audio: Any, batch_size: int) -> None:
        """Re-estimate the encoder's batch-norm running statistics on the (un-augmented,
        pre-normalised) training clips (:func:`~auscult.methods._neural.recalibrate_batchnorm`).

        Scoring runs the encoder in eval mode on un-augmented inputs. After a short run the running
        statistics (momentum 0.1) still lag the batch statistics, and we measured every embedding
        collapsing onto one direction (cosine distances ~1e-10) in 2-CPU synthetic runs; the
        re-estimate removes that and changes little after the paper's 150 epochs. Training normals
        only - no test clip is involved.
        """
        enc = self.models[key]["encoder"].to(self.device)
        mean, std = self.models[key]["prenorm"]
        fe = self.frontend.to(self.device)
        nu.recalibrate_batchnorm(enc, clips, audio, batch_size, self.device,
                                 inputs=lambda xb: ((fe(xb) - mean) / std).unsqueeze(1))
        enc.eval()

    def _fit_backend(self, train: Sequence[Clip], audio: Any) -> None:
        self.train_embeddings = self.embed(train, audio)
        self.train_meta = [{**r, "path": str(c.path)} for r, c in zip(nu.clip_meta(train), train)]
        self.backend = nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)
        self.backend.fit(self.train_embeddings, nu.meta_from_state(self.train_meta))

    # ---- embed / score ----------------------------------------------------------------------
    def _model_for(self, clip: Clip) -> str:
        key = self.section_key(clip)
        if key in self.models:
            return key
        if "*" in self.models:
            return "*"
        raise DataError(f"{clip.path}: clsia has no model for section {key} (trained: {sorted(self.models)}); "
                        "score clips of the sections it was fitted on")

    @torch.no_grad()
    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Encoder embeddings ``[N, D]`` (pre-normalised log-mel, no augmentation), computed with an
        inference copy of each encoder (batch norm folded, channels_last: same values to float rounding)."""
        from ...nets.inference import inference_copy

        if not self.models:
            raise ConfigError("clsia: call fit() (or load_state_dict()) before embed()/score()")
        clips = list(clips)
        owner = [self._model_for(c) for c in clips]
        fe = self.frontend.to(self.device)
        out: Optional[np.ndarray] = None
        for key in sorted(set(owner)):
            idx = [i for i, o in enumerate(owner) if o == key]
            enc = inference_copy(self.models[key]["encoder"].to(self.device).eval())
            mean, std = self.models[key]["prenorm"]
            sub = [clips[i] for i in idx]
            rows = []
            for _, xb in audio.iter_batches(sub, int(self.opts["embed_batch_size"])):
                if self.n_samples is not None and xb.shape[1] != self.n_samples:
                    raise DataError(f"clsia: clips of {xb.shape[1]} samples but the model was built for "
                                    f"{self.n_samples}; use the recipe's audio settings (length/duration)")
                f = (fe(xb.to(self.device)) - mean) / std
                rows.append(enc(f.unsqueeze(1)).float().cpu().numpy())
            emb = np.concatenate(rows, 0)
            if out is None:
                out = np.zeros((len(clips), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
        assert out is not None
        return out

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        with nu.torch_threads(self.threads):
            return self._score(clips, audio)

    def _score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        from ...backends import BackendMeta

        if self.backend is None:
            raise ConfigError("clsia: call fit() (or load_state_dict()) before score()")
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        emb = self.embed(clips, audio)
        scores = np.asarray(self.backend.score(emb, BackendMeta.from_clips(clips)), dtype=np.float64)
        if self.backend_cfg.get("name") == "knn":
            self._leave_one_out(clips, emb, scores)
        return scores

    def _leave_one_out(self, clips: Sequence[Clip], emb: np.ndarray, scores: np.ndarray) -> None:
        """Score clips the back-end was fitted on against the *other* training clips of their section.

        A training clip is its own nearest neighbour (distance 0), so thresholds fitted on
        training-normal scores would flag nearly every test clip. Each in-sample clip is re-scored by
        a kNN fitted on its section's training rows without it (only for ``knn``: its fit is a copy,
        so this costs one pass over the section per clip). The network itself has still seen the clip.
        """
        from ...backends import BackendMeta

        index = {r.get("path"): j for j, r in enumerate(self.train_meta) if r.get("path")}
        sect = np.array([f"{r['machine']}/{r['section']}" for r in self.train_meta])
        for i, c in enumerate(clips):
            j = index.get(str(c.path))
            if j is None:
                continue
            rows = np.flatnonzero((sect == sect[j]) & (np.arange(len(sect)) != j))
            try:
                be = nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)
                be.fit(self.train_embeddings[rows], nu.meta_from_state([self.train_meta[r] for r in rows]))
                scores[i] = float(be.score(emb[i:i + 1], BackendMeta.from_clips([c]))[0])
            except DataError:  # too few rows left (e.g. the only target clip): keep the in-sample score
                continue

    def scoring_graph(self, clip: Clip) -> ScoringGraph:
        """Front-end (conv STFT) -> the section model's pre-normalisation -> its encoder (inference
        copy); the kNN back-end scores the embedding."""
        from ...nets.inference import inference_copy

        if self.backend is None:
            raise ConfigError("clsia: call fit() (or load_state_dict()) before export")
        key = self._model_for(clip)
        mean, std = self.models[key]["prenorm"]
        enc = inference_copy(self.models[key]["encoder"].to("cpu").eval())
        feats = {**dict(self.config.get("features") or {}), "stft_impl": "conv"}
        module = _Embedder(nu.build_frontend_from_recipe(feats), enc, mean, std).eval()
        dim = int(self.train_embeddings.shape[1]) if self.train_embeddings is not None else int(enc.output_shape[0])
        return ScoringGraph(module, "embedding", self.sample_rate, n_samples=self.n_samples,
                            backends=[{"state": backend_to_state(self.backend), "columns": [0, dim]}],
                            meta={"machine": clip.machine, "section": clip.section, "domain": clip.domain})

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.name, "version": 1, "n_samples": self.n_samples, "classes": list(self.classes),
            "models": {k: {"encoder": {n: t.detach().cpu().clone() for n, t in m["encoder"].state_dict().items()},
                           "prenorm": list(m["prenorm"])} for k, m in self.models.items()},
            "train_embeddings": None if self.train_embeddings is None else np.array(self.train_embeddings),
            "train_meta": [dict(r) for r in self.train_meta],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ...engine.checkpoint import load_model_state

        if state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        self.n_samples = int(state["n_samples"])
        self.classes = list(state.get("classes") or [])
        self.models = {}
        for key, m in state["models"].items():
            enc = self._build_encoder()
            load_model_state(enc, m["encoder"], source=f"clsia state ({key})")
            enc.eval()
            self.models[key] = {"encoder": enc, "prenorm": tuple(float(v) for v in m["prenorm"])}
        self.train_embeddings = np.asarray(state["train_embeddings"], dtype=np.float32)
        self.train_meta = [dict(r) for r in state["train_meta"]]
        self.backend = nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)
        self.backend.fit(self.train_embeddings, nu.meta_from_state(self.train_meta))


class _Embedder(nn.Module):
    """waveform ``[B, T]`` -> log-mel -> ``(x - mean) / std`` -> encoder embedding ``[B, D]``."""

    def __init__(self, frontend: nn.Module, encoder: nn.Module, mean: float, std: float):
        super().__init__()
        self.frontend, self.encoder = frontend, encoder
        self.mean, self.std = float(mean), float(std)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.encoder(((self.frontend(waveform) - self.mean) / self.std).unsqueeze(1))
