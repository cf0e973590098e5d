"""ProtoASD: robust prototype learning for anomalous sound detection.

Input: the inverted log-mel (128 bands, n_fft 1024, hop 512; narrow bands at high frequencies),
standardised with the training set's mean and standard deviation, and cut into random 64-frame
crops. Net: ResNet18 with time-frequency attention pooling (``resnet18_tfap``), built for the crop.
Classes: the attribute classes of the fitted group, ``(machine, section, domain, attribute set)``.

Two training stages, each an engine :class:`~auscult.engine.Trainer` run (checkpoints, resume):

1. **Pre-training** (recipe ``train:``; SGD momentum 0.9, weight decay 5e-5, lr 0.1 / 0.01 /
   0.001 for 50 / 40 / 30 epochs, batch 32): a prototypical loss over the attribute classes with
   *multiple-prototype expansion*. At the start of every epoch the prototypes are recomputed
   (:class:`EpochPrototypes`): each training clip is embedded (one random crop, in training mode
   like the loss's embeddings, in batches of the training batch size), each
   class gets its normalised mean and ``n_sub_prototypes`` sub-prototypes (normalised means of
   random ``subset_ratio`` = 25% subsets of its clips). The loss of an embedding is the
   supervised-contrastive form over all prototypes at temperature 0.07, every prototype of its own
   class a positive (:func:`prototype_loss`).
2. **Fine-tuning** (``protoasd.finetune``; lr 0.01 then 0.001 for 30 + 20 epochs): balanced
   batches of N = 10 attribute classes x K = 10 clips (:class:`~auscult.data.samplers.BalancedBatchSampler`,
   random crops make repeated clips differ), prototypes from the batch, with *negative-prototype
   expansion*: pseudo-anomalies ``normalise(lam z + (1 - lam) p_other)``, ``lam ~ U[0.25, 0.5]``,
   join the denominator (:class:`~auscult.losses.PrototypicalLoss` with ``n_negatives``).

Score: a clip's embedding is the mean of the L2-normalised embeddings of its 64-frame crops taken
every ``crop_hop`` (32) frames (our choice; the paper does not say how crops are pooled). The
score is the minimum Mahalanobis distance to the attribute prototypes of the clip's section (both
domains; prototype = mean clip embedding of the class), with one covariance estimated from all of
the section's training embeddings (Ledoit-Wolf shrinkage by default, since target classes are tiny).
A clip that was in the training set is scored leave-one-out (prototypes and covariance without it),
so thresholds fitted on training-normal scores are not biased by in-sample distances.

With a single attribute class (one machine, one section, one attribute set) both prototype losses
carry no training signal: ``auscult fit`` refuses (``one_class = "refuse"``) and names methods that
work on one machine; the research door warns.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment import random_frame_crop
from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from ..losses import PrototypicalLoss
from ..nets import NETS
from . import _neural as nu
from .base import METHODS, Method, merge_section

log = logging.getLogger("auscult.methods.protoasd")

PROTOASD_DEFAULTS: dict[str, Any] = {
    "crop_frames": 64,
    "crop_hop": 32,
    "n_sub_prototypes": 4,
    "subset_ratio": 0.25,
    "temperature": 0.07,
    "shrinkage": "ledoit-wolf",   # ledoit-wolf | none
    "embed_batch_size": 64,
    "finetune": {
        "epochs": 50, "lr": 0.01, "milestones": [30], "gamma": 0.1,
        "n_classes": 10, "n_per_class": 10, "n_negatives": 4, "neg_lambda": [0.25, 0.5],
        "target_fraction": None, "n_batches": None,
    },
}
_FINETUNE_SAMPLER_KEYS = ("n_classes", "n_per_class", "n_negatives", "neg_lambda", "target_fraction", "n_batches")


def attribute_class(clip: Clip) -> str:
    """The attribute class of a clip: ``machine/section/domain/attribute set``."""
    return f"{clip.machine}/{clip.section}/{clip.domain or 'source'}/{clip.attribute_key}"


def prototype_loss(emb: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, owner: torch.Tensor,
                   temperature: float = 0.07) -> torch.Tensor:
    """Supervised-contrastive prototype loss against fixed prototypes.

    ``L_i = -mean_{p: owner[p] = y_i} log( exp(z_i.p/tau) / sum_{p'} exp(z_i.p'/tau) )`` with
    ``z = normalise(emb)`` and ``prototypes`` already normalised (treated as constants).
    """
    z = F.normalize(emb, dim=1)
    logits = z @ prototypes.detach().to(z).T / temperature
    pos = (owner.to(labels.device)[None, :] == labels[:, None]).to(z.dtype)
    if not bool((pos.sum(1) > 0).all()):
        raise ConfigError("prototype loss: a label has no prototype (recompute the prototypes)")
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -((pos * log_prob).sum(1) / pos.sum(1)).mean()


class EpochPrototypes(nn.Module):
    """Class prototypes (plus sub-prototypes) recomputed once per epoch; buffers so they checkpoint."""

    def __init__(self):
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(0))
        self.register_buffer("owner", torch.zeros(0, dtype=torch.long))
        self.register_buffer("epoch", torch.full((), -1, dtype=torch.long))

    @torch.no_grad()
    def compute(self, emb: torch.Tensor, labels: torch.Tensor, n_classes: int, n_sub: int, ratio: float,
                epoch: int) -> None:
        z = F.normalize(emb, dim=1)
        protos, owner = [], []
        for c in range(n_classes):
            idx = (labels == c).nonzero().flatten()
            if idx.numel() == 0:
                continue
            protos.append(F.normalize(z[idx].mean(0, keepdim=True), dim=1))
            owner.append(c)
            take = max(1, int(round(ratio * idx.numel())))
            for _ in range(n_sub):
                pick = idx[torch.randperm(idx.numel())[:take].to(idx.device)]
                protos.append(F.normalize(z[pick].mean(0, keepdim=True), dim=1))
                owner.append(c)
        self.prototypes = torch.cat(protos).to(emb.device)
        self.owner = torch.tensor(owner, dtype=torch.long, device=emb.device)
        self.epoch = torch.tensor(int(epoch), dtype=torch.long)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        for name in ("prototypes", "owner"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@METHODS.register("protoasd", defaults={"protoasd": PROTOASD_DEFAULTS, "net": None, "train": None},
                  description="ProtoASD: ResNet18-TFAP on inverted log-mel crops, prototypical pre-training + "
                              "negative-prototype fine-tuning, Mahalanobis to prototypes")
class ProtoASD(Method):
    """ProtoASD (see the module docstring). Recipe sections: ``features``, ``net``, ``train``
    (pre-training), ``protoasd`` (crops, prototypes, ``finetune``).

    Capabilities: ``embed`` (the mean of the L2-normalised crop embeddings)."""

    name = "protoasd"
    capabilities = frozenset({"embed"})
    fixed_length = True
    classes = "attribute"
    one_class = "refuse"
    open_keys = {"protoasd": ("finetune",)}
    #: ``auscult fit``: recipes/synthetic/protoasd.yaml's CPU budget
    fit_defaults = {
        "features": {"frontend": "inverted_logmel", "n_mels": 64, "stft_precision": "float32"},
        "net": {"name": "resnet18_tfap", "emb_dim": 128},
        "train": {"epochs": 15, "batch_size": 16, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                  "weight_decay": 5.0e-5, "schedule": "multistep", "milestones": [10], "gamma": 0.1, "log_every": 10,
                  "threads": 1},
        "protoasd": {"finetune": {"epochs": 5, "lr": 0.005, "milestones": [], "n_classes": 10, "n_per_class": 4,
                                  "n_negatives": 4, "neg_lambda": [0.25, 0.5]}},
    }

    def __init__(self, config: dict[str, Any], context: Any = None):
        super().__init__(config, context)
        self.opts = merge_section(PROTOASD_DEFAULTS, config.get("protoasd"), "protoasd", open_keys=("finetune",))
        ft_known = set(PROTOASD_DEFAULTS["finetune"]) | set(nu.OPTIM_KEYS) | set(nu.TRAIN_KEYS) | {"milestones"}
        bad = sorted(set(self.opts["finetune"]) - ft_known)
        if bad:
            raise ConfigError(f"protoasd.finetune: unknown setting(s) {bad}; known: {sorted(ft_known)}")
        if self.opts["shrinkage"] not in ("ledoit-wolf", "none"):
            raise ConfigError(f"protoasd.shrinkage must be 'ledoit-wolf' or 'none', got {self.opts['shrinkage']!r}")
        if int(self.opts["crop_frames"]) < 1 or int(self.opts["crop_hop"]) < 1:
            raise ConfigError("protoasd.crop_frames and protoasd.crop_hop must be >= 1")
        net = dict(config.get("net") or {"name": "resnet18_tfap"})
        self.net_name = str(net.pop("name", "resnet18_tfap"))
        self.net_kwargs = net
        NETS.get(self.net_name)
        nu.check_net_kwargs(self.net_name, self.net_kwargs)
        feats = dict(config.get("features") or {})
        feats.setdefault("frontend", "inverted_logmel")
        self.frontend = nu.build_frontend_from_recipe(feats)
        self.threads = nu.split_train_section(config.get("train"), self.context)[2]["threads"]
        nu.split_train_section(self._finetune_train_section(), self.context, "protoasd.finetune")
        self.n_samples: Optional[int] = None
        self.norm: tuple[float, float] = (0.0, 1.0)
        self.net: Optional[nn.Module] = None
        self.classes: list[str] = []
        self.train_embeddings: Optional[np.ndarray] = None
        self.train_meta: list[dict[str, Any]] = []
        self.sections: dict[str, dict[str, np.ndarray]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.selected: str = ""  # the pre-trained weights kept (with held-out clips)

    # ---- helpers -----------------------------------------------------------------------------
    def _finetune_train_section(self) -> dict[str, Any]:
        base = {k: v for k, v in dict(self.config.get("train") or {}).items() if k != "batch_size"}
        ft = {k: v for k, v in self.opts["finetune"].items() if k not in _FINETUNE_SAMPLER_KEYS}
        merged = {**base, **ft}
        if "milestones" in ft:
            merged["schedule"] = "multistep" if ft["milestones"] else "constant"
        return merged

    @property
    def device(self) -> torch.device:
        from ..engine.runtime import resolve_device

        return resolve_device(str(self.context.device))

    @property
    def n_frames(self) -> int:
        assert self.n_samples is not None
        return int(self.frontend.output_shape(self.n_samples)[-1])

    def _build_net(self) -> nn.Module:
        crop = int(self.opts["crop_frames"])
        if crop > self.n_frames:
            raise ConfigError(f"protoasd.crop_frames={crop} but a clip has only {self.n_frames} frames; "
                              "use longer clips or shorter crops")
        assert self.n_samples is not None
        return nu.build_net(self.net_name, self.net_kwargs,
                            nu.geometry(self.config, self.frontend, self.n_samples, crop_frames=crop))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.norm
        return (self.frontend(x.to(self.device)) - mean) / std

    def _feature_stats(self, clips: Sequence[Clip], audio: Any) -> tuple[float, float]:
        fe = self.frontend.to(self.device)
        return nu.feature_stats(fe, clips, audio, int(self.opts["embed_batch_size"]), self.device)

    def _crops(self, f: torch.Tensor) -> torch.Tensor:
        """All ``crop_frames`` windows every ``crop_hop`` frames (the last one flush with the end):
        ``[B, F, T] -> [B, n_crops, F, crop]``."""
        crop, hop, t = int(self.opts["crop_frames"]), int(self.opts["crop_hop"]), f.shape[-1]
        starts = list(range(0, t - crop + 1, hop))
        if starts[-1] != t - crop:
            starts.append(t - crop)
        return torch.stack([f[..., s:s + crop] for s in starts], 1)

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "ProtoASD":
        """Train on ``train``. The paper's schedule is fixed; with held-out training normals ``val``
        (the recipe's ``data.holdout``) the prototype pre-training gets a stop rule: after every epoch
        ``val_loss`` = the prototype loss of every crop of the held-out clips (eval mode, against the
        epoch's prototypes) is recorded in ``history["pretrain"]``, the epoch with the lowest one is
        kept (``selected``) and ``train.patience`` epochs without improvement stop the stage. The
        fine-tuning stage keeps its fixed schedule."""
        with nu.torch_threads(self.threads):
            return self._fit(train, val, audio)

    def _fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "ProtoASD":
        from ..data.datasets import ClipDataset

        train = list(train)
        self.n_samples = nu.start_fit("protoasd", train, audio, seed=int(self.context.seed))
        self.classes = sorted({attribute_class(c) for c in train})
        cid = {k: i for i, k in enumerate(self.classes)}
        targets = [cid[attribute_class(c)] for c in train]
        if len(self.classes) < 2:
            log.warning("protoasd: the %d training clips form a single attribute class (%s): the prototype losses "
                        "carry no training signal, the embedding stays close to its initialisation; fit several "
                        "sections/attribute sets together (model_per: machine or all)", len(train), self.classes[0])
        self.frontend = self.frontend.to(self.device)
        self.norm = self._feature_stats(train, audio)
        self.net = self._build_net()
        ds = ClipDataset(train, audio, targets=targets)
        self.history = {}
        vals = [c for c in val if attribute_class(c) in cid]
        self.history["pretrain"] = self._pretrain(ds, targets, vals, [cid[attribute_class(c)] for c in vals], audio)
        self.history["finetune"] = self._finetune(ds, train, targets)
        self.net.eval()
        self.train_embeddings = self.embed(train, audio)
        self.train_meta = nu.clip_meta(train)
        self.train_meta = [{**r, "class": attribute_class(c), "path": str(c.path)} for r, c in zip(self.train_meta, train)]
        self._fit_prototypes()
        return self

    def _pretrain(self, ds: Any, targets: Sequence[int], val: Sequence[Clip] = (), val_targets: Sequence[int] = (),
                  audio: Any = None) -> list[dict[str, Any]]:
        from ..engine.optim import build_optimizer
        from ..engine.trainer import Trainer

        tcfg, ocfg, ld = nu.split_train_section(self.config.get("train"), self.context)
        n = len(ds)
        bs = min(int(ld["batch_size"]), n)
        loader = nu.loader_for(ds, bs, shuffle=True, drop_last=n > bs and n % bs == 1, num_workers=ld["num_workers"])
        protos = EpochPrototypes().to(self.device)
        crop = int(self.opts["crop_frames"])
        n_sub, ratio, tau = int(self.opts["n_sub_prototypes"]), float(self.opts["subset_ratio"]), float(self.opts["temperature"])
        n_classes = len(self.classes)
        all_targets = torch.as_tensor(list(targets), dtype=torch.long)

        @torch.no_grad()
        def recompute(net: nn.Module, epoch: int) -> None:
            # embed in training mode (batch statistics, as the loss's embeddings are), then restore
            # the BN running statistics so that recomputing leaves no trace on the model
            saved = {k: b.clone() for k, b in net.named_buffers()}
            embs = []
            for i in range(0, n, bs):
                x = torch.stack([ds[j][0] for j in range(i, min(n, i + bs))])
                embs.append(net(random_frame_crop(self._features(x), crop).unsqueeze(1)))
            for k, b in net.named_buffers():
                b.copy_(saved[k])
            protos.compute(torch.cat(embs), all_targets.to(self.device), n_classes, n_sub, ratio, epoch)

        def step_fn(batch, net, state):
            net = getattr(net, "module", net)
            if int(protos.epoch) != state.epoch:
                recompute(net, state.epoch)
            x, y, _ = batch
            with torch.no_grad():
                f = random_frame_crop(self._features(x), crop)
            return {"loss": prototype_loss(net(f.unsqueeze(1)), y, protos.prototypes, protos.owner, tau)}

        val_fn = None
        if val:
            val_wave = audio.batch(list(val))
            val_y = torch.as_tensor(list(val_targets), dtype=torch.long)

            @torch.no_grad()
            def val_fn(net, state):
                net = getattr(net, "module", net)
                if int(protos.epoch) < 0:
                    return {"val_loss": float("nan")}
                total, count = 0.0, 0
                for i in range(0, len(val), bs):
                    crops = self._crops(self._features(val_wave[i:i + bs]))  # [B, n, F, crop]
                    b, k = crops.shape[:2]
                    y = val_y[i:i + bs].to(self.device).repeat_interleave(k)
                    emb = net(crops.reshape(b * k, 1, *crops.shape[2:]))
                    total += float(prototype_loss(emb, y, protos.prototypes, protos.owner, tau)) * b * k
                    count += b * k
                return {"val_loss": total / count}

        opt = build_optimizer(self.net, ocfg)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        run_dir = nu.stage_run_dir(self.context, "protoasd_pretrain")
        best = nu.BestWeights()
        trainer = Trainer(self.net, step_fn, loader, opt, sched, tcfg, run_dir=run_dir, val_fn=val_fn,
                          extra_state={"prototypes": protos}, callbacks=[best])
        history = trainer.fit()
        if val_fn is not None:
            self.selected = nu.restore_selected(self.net, trainer, best, run_dir, use_ema=False)
            log.info("protoasd: pre-trained weights of %s (val_loss on %d held-out clips)", self.selected, len(val))
        return history

    def finetune_loader(self, ds: Any, train: Sequence[Clip], targets: Sequence[int]) -> Any:
        """The fine-tuning loader: balanced batches of N attribute classes x K clips
        (N = ``finetune.n_classes`` capped at the number of classes, K = ``finetune.n_per_class``)."""
        from ..data.samplers import BalancedBatchSampler

        ft = self.opts["finetune"]
        _, _, ld = nu.split_train_section(self._finetune_train_section(), self.context, "protoasd.finetune")
        n_cls = min(int(ft["n_classes"]), len(set(targets)))
        sampler = BalancedBatchSampler(list(targets), n_cls, int(ft["n_per_class"]),
                                       domains=[c.domain for c in train], target_fraction=ft["target_fraction"],
                                       n_batches=ft["n_batches"], seed=int(self.context.seed))
        return nu.loader_for(ds, 0, shuffle=False, drop_last=False, num_workers=ld["num_workers"], batch_sampler=sampler)

    def _finetune(self, ds: Any, train: Sequence[Clip], targets: Sequence[int]) -> list[dict[str, Any]]:
        from ..engine.optim import build_optimizer
        from ..engine.trainer import Trainer

        ft = self.opts["finetune"]
        tcfg, ocfg, ld = nu.split_train_section(self._finetune_train_section(), self.context, "protoasd.finetune")
        loader = self.finetune_loader(ds, train, targets)
        loss_fn = PrototypicalLoss(temperature=float(self.opts["temperature"]), n_negatives=int(ft["n_negatives"]),
                                   neg_lambda=tuple(ft["neg_lambda"]), seed=int(self.context.seed))
        crop = int(self.opts["crop_frames"])

        def step_fn(batch, net, state):
            x, y, _ = batch
            with torch.no_grad():
                f = random_frame_crop(self._features(x), crop)
            # the loss's own generator is not checkpointed: draw its randomness from the global RNG
            gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
            return {"loss": loss_fn(net(f.unsqueeze(1)), y, generator=gen)}

        opt = build_optimizer(self.net, ocfg)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        trainer = Trainer(self.net, step_fn, loader, opt, sched, tcfg, run_dir=nu.stage_run_dir(self.context, "protoasd_finetune"))
        return trainer.fit()

    # ---- back-end: Mahalanobis to the section's attribute prototypes -----------------------------
    def _section_model(self, x: np.ndarray, cls: Sequence[str], key: str) -> dict[str, np.ndarray]:
        """Prototypes (class means) and the precision of one section's training embeddings."""
        from ..backends.mahalanobis import estimate_covariance, precision_matrix

        if len(x) < 2:
            raise DataError(f"protoasd: section {key} has {len(x)} training clip(s); a covariance needs at least 2")
        names = sorted(set(cls))
        means = np.stack([x[[c == n for c in cls]].mean(0) for n in names])
        cov = estimate_covariance(x, str(self.opts["shrinkage"]))
        return {"names": np.array(names), "means": means, "precision": precision_matrix(cov)}

    def _fit_prototypes(self) -> None:
        assert self.train_embeddings is not None
        x = self.train_embeddings.astype(np.float64)
        self.sections = {}
        keys = np.array([f"{r['machine']}/{r['section']}" for r in self.train_meta])
        for key in sorted(set(keys)):
            rows = np.flatnonzero(keys == key)
            self.sections[key] = self._section_model(x[rows], [self.train_meta[r]["class"] for r in rows], key)

    # ---- embed / score -------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Clip embeddings ``[N, D]``: mean of the L2-normalised crop embeddings."""
        if self.net is None:
            raise ConfigError("protoasd: call fit() (or load_state_dict()) before embed()/score()")
        from ..nets.inference import inference_copy

        net = inference_copy(self.net.to(self.device).eval())  # batch norm folded, channels_last
        self.frontend = self.frontend.to(self.device)
        rows = []
        for _, xb in audio.iter_batches(list(clips), int(self.opts["embed_batch_size"])):
            if xb.shape[1] != self.n_samples:
                raise DataError(f"protoasd: clips of {xb.shape[1]} samples but the model was built for "
                                f"{self.n_samples}; use the recipe's audio settings (length/duration)")
            crops = self._crops(self._features(xb))  # [B, n, F, c]
            b, n = crops.shape[:2]
            z = F.normalize(net(crops.reshape(b * n, 1, *crops.shape[2:])), dim=1).reshape(b, n, -1)
            rows.append(z.mean(1).float().cpu().numpy())
        return np.concatenate(rows, 0) if rows else np.zeros((0, 0), np.float32)

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        with nu.torch_threads(self.threads):
            return self._score(clips, audio)

    def _score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Minimum Mahalanobis distance to the attribute prototypes of the clip's section."""
        from ..backends.mahalanobis import mahalanobis_sq

        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        for c in clips:
            if f"{c.machine}/{c.section}" not in self.sections:
                raise DataError(f"{c.path}: protoasd was not fitted on section {c.machine}/{c.section} "
                                f"(fitted: {sorted(self.sections)})")
        emb = self.embed(clips, audio).astype(np.float64)
        out = np.zeros(len(clips), dtype=np.float64)
        index = {r.get("path"): j for j, r in enumerate(self.train_meta) if r.get("path")}
        keys = np.array([f"{r['machine']}/{r['section']}" for r in self.train_meta])
        for i, c in enumerate(clips):
            key = f"{c.machine}/{c.section}"
            s = self.sections[key]
            j = index.get(str(c.path))
            if j is not None:
                # a training clip: prototypes and covariance without it (leave-one-out), so thresholds
                # fitted on training-normal scores are not biased low by in-sample distances
                rows = np.flatnonzero((keys == key) & (np.arange(len(keys)) != j))
                try:
                    x = np.asarray(self.train_embeddings, dtype=np.float64)[rows]
                    s = self._section_model(x, [self.train_meta[r]["class"] for r in rows], key)
                except DataError:
                    pass
            d2 = np.stack([mahalanobis_sq(emb[i:i + 1], m, s["precision"]) for m in s["means"]], 1)
            out[i] = float(np.sqrt(d2.min()))
        return out

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            raise ConfigError("protoasd: nothing to save before fit()")
        return {
            "method": self.name, "version": 1, "n_samples": self.n_samples, "norm": list(self.norm),
            "classes": list(self.classes),
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "train_embeddings": np.array(self.train_embeddings),
            "train_meta": [dict(r) for r in self.train_meta],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..engine.checkpoint import load_model_state

        if state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        self.n_samples = int(state["n_samples"])
        self.norm = (float(state["norm"][0]), float(state["norm"][1]))
        self.classes = list(state["classes"])
        self.net = self._build_net()
        load_model_state(self.net, state["net"], source="protoasd state")
        self.net.eval()
        self.train_embeddings = np.asarray(state["train_embeddings"], dtype=np.float32)
        self.train_meta = [dict(r) for r in state["train_meta"]]
        self._fit_prototypes()
