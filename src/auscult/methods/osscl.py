"""OS-SCL: one-stage noise-supervised contrastive learning with feature perturbation.

One model for every machine type of the data (``model_per: all``); the classes are the
``machine/section`` pairs it sees (machine type x machine ID for DCASE 2020: 41 classes with the
additional training data). Per training batch of waveforms ``x`` with class ids ``y``:

1. **Mixup** on the waveform *and* on its log-mel with one shared partner permutation and ratio
   ``lam ~ Beta(0.5, 0.5)`` (``augment.mixup``): ``x~ = lam x + (1 - lam) x[perm]`` and
   ``M~ = lam M(x) + (1 - lam) M(x)[perm]`` (the log-mel is mixed in the log domain, as the
   Noisy-ArcMix code does). The labels stay ``y_a = y`` (noisy labels) and ``y_b = y[perm]``.
2. **Net**: MobileFaceNet on the 1-channel log-mel (``net.name: mobilefacenet``) or on the
   TFSTgram stack log-mel + Tgram + TFgram (``net.name: tfstgram_mfn``; the Tgram/TFgram branches
   read the mixed waveform) -> 128-d embedding ``e``.
3. **Feature perturbation head** (``loss.head``: ``E -> R=64 -> E``, BN, LeakyReLU or ReLU,
   L2-normalised; ``layout: bn_act`` or the code's ``act_bn``) -> ``z``.
4. **Loss** = noisy supervised contrastive loss on ``z`` with the labels ``y_a`` (``tau = 0.02``;
   ``base_temperature``, ``anchors``, ``reduction`` choose the code's ``tau / 0.07`` scaling and its
   average over all anchors) + Noisy-ArcMix (``s = 30``, ``m = 0.7`` with the log-mel / LeakyReLU
   head, ``0.4`` with TFSTgram / ReLU): ``lam CE(z_m, y_a) + (1 - lam) CE(z_m, y_b)`` with the margin
   on ``y_a``, on ``e`` (``loss.arcmix.input: embedding``) or on ``z`` (``head``, the OS-SCL code).

``recipes/dcase2020/osscl*.yaml`` select what the authors' code computes; ``tests/reference`` checks
that computation against numbers produced by that code, and docs/methods/osscl.md tabulates every
point where the paper's text and the code differ with the option that selects each.

Training runs in the engine's :class:`~auscult.engine.Trainer` (AdamW, cosine annealing, EMA of the
weights, checkpoints/resume). Model selection: after each epoch the EMA model scores the held-out
training normals (``val``, 5 % of the training normals in the recipe); the epoch with the lowest
mean score (= mean cross-entropy of held-out normals at their own class) is kept. Without held-out
clips the final EMA weights are used.

Score (``score.kind``):

* ``cross_entropy`` (published): ``-log softmax(s * cos(c, W))[own class]`` -- the clip's
  cross-entropy at its own ``machine/section`` class, from the ArcFace class centres ``W`` and the
  classifier's input ``c`` (``e``, or ``z`` with ``loss.arcmix.input: head``), without the margin
  (``score.margin: true`` applies the training margin to the own class, as the code does);
* ``backend``: any :mod:`auscult.backends` back-end on the 128-d embeddings (recipe ``backend:``,
  default kNN, k = 1, cosine, per section).

``score.recalibrate_bn: true`` re-estimates the batch-norm running statistics on one pass over the
clean training clips after training (see :func:`~auscult.methods._neural.recalibrate_batchnorm`; off
in the paper recipes).

With a single class (one machine, one section) the classifier loss is trivial and the embedding
learns nothing about the machine: ``auscult fit`` refuses (``one_class = "refuse"``) and names
methods that work on one machine; the research door warns.

``features.normalize: global`` standardises the log-mel with the training clips' global mean and
standard deviation (the paper feeds the dB values as they are: ``none``, the default). In training
mode the first batch norm removes that affine map anyway; it matters for short runs, where the
batch-norm running statistics (used at test time) have not yet caught up with dB-scaled inputs.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from . import _neural as nu
from ._neural import BestWeights, build_ema, parse_ema, recalibrate_batchnorm, restore_selected, split_own_train_keys
from .base import METHODS, Method, ScoringGraph, backend_to_state, merge_section

log = logging.getLogger("auscult.methods.osscl")

#: defaults of the recipe sections this method reads (besides ``features``, ``net`` and ``train``)
OSSCL_DEFAULTS: dict[str, dict[str, Any]] = {
    "augment": {"mixup": {"alpha": 0.5, "dist": "beta", "p": 1.0}},
    "loss": {
        "head": {"bottleneck": 64, "activation": "leaky_relu", "layout": "bn_act"},
        "supcon": {"temperature": 0.02, "base_temperature": 0.02, "weight": 1.0, "anchors": "positive",
                   "reduction": "mean"},
        "arcmix": {"scale": 30.0, "margin": 0.7, "weight": 1.0, "input": "embedding"},
    },
    "score": {"kind": "cross_entropy", "margin": False, "batch_size": 32, "recalibrate_bn": False},
}
SCORE_KINDS = ("cross_entropy", "backend")
#: what Noisy-ArcMix (and so the cross-entropy score) reads: the net's embedding or the L2-normalised
#: feature perturbation head output (the OS-SCL code)
ARCMIX_INPUTS = ("embedding", "head")
NORMALIZE = ("none", "global")
TWO_INPUT_NETS = ("stgram_mfn", "tfstgram_mfn")


def section_class(clip: Clip) -> str:
    """OS-SCL's class of a clip: ``machine/section`` (machine type x machine ID / section)."""
    return f"{clip.machine}/{clip.section}"


class OSSCLModel(nn.Module):
    """Log-mel front-end + net + feature perturbation head + Noisy-ArcMix classifier (one module so
    the trainer's checkpoints and EMA cover all of it).

    ``arcmix_input`` (recipe ``loss.arcmix.input``): the classifier reads the net's embedding
    (``"embedding"``) or the L2-normalised head output (``"head"``, the OS-SCL code: both losses and
    the score then see the perturbed, normalised feature)."""

    def __init__(self, frontend: nn.Module, net: nn.Module, head: nn.Module, arcmix: nn.Module, two_inputs: bool,
                 arcmix_input: str = "embedding"):
        super().__init__()
        if arcmix_input not in ARCMIX_INPUTS:
            raise ConfigError(f"osscl: loss.arcmix.input must be one of {ARCMIX_INPUTS}, got {arcmix_input!r}")
        self.frontend = frontend
        self.net = net
        self.head = head
        self.arcmix = arcmix
        self.two_inputs = bool(two_inputs)
        self.arcmix_input = arcmix_input
        # log-mel standardisation (features.normalize: global); identity by default
        self.register_buffer("mel_mean", torch.zeros(()))
        self.register_buffer("mel_std", torch.ones(()))

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """The (standardised) log-mel ``[B, n_mels, frames]`` of waveforms ``[B, T]``."""
        return (self.frontend(wave) - self.mel_mean) / self.mel_std

    def embed_inputs(self, wave: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        """Embedding ``[B, E]`` of (possibly mixed) waveforms and their log-mels."""
        if self.two_inputs:
            return self.net(wave, logmel)
        return self.net(logmel.unsqueeze(1))

    def classifier_input(self, emb: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What Noisy-ArcMix reads: ``z`` (the normalised head output; computed when not given) or ``emb``."""
        if self.arcmix_input == "head":
            return self.head(emb) if z is None else z
        return emb

    def class_logits(self, wave: torch.Tensor, logmel: torch.Tensor, y: Optional[torch.Tensor] = None,
                     margin: bool = False) -> torch.Tensor:
        """Scaled ArcFace logits ``[B, C]`` of clips: with the additive margin at class ``y``
        (``margin=True``, the OS-SCL code's test-time logits) or the plain ``s * cos``."""
        c = self.classifier_input(self.embed_inputs(wave, logmel))
        if margin:
            if y is None:
                raise ConfigError("osscl: margin logits need the clips' classes")
            return self.arcmix.logits(c, y)
        return self.arcmix.scale * self.arcmix.cosine(c)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed_inputs(wave, self.logmel(wave))


def cross_entropy_at(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``-log softmax(logits)[y]`` per row, in float64 ``[B]`` (the OS-SCL anomaly score)."""
    return -torch.log_softmax(logits.double(), dim=1).gather(1, y[:, None].to(logits.device))[:, 0]


@METHODS.register("osscl", defaults={**OSSCL_DEFAULTS, "net": None, "train": None},
                  description="OS-SCL: MobileFaceNet (log-mel or TFSTgram), mixup, noisy SupCon + Noisy-ArcMix, one "
                              "model for all machines; cross-entropy score")
class OSSCL(Method):
    """OS-SCL (see the module docstring). Recipe sections: ``features``, ``net``, ``augment``,
    ``loss``, ``train`` (plus ``ema``), ``score``, ``backend``; the pipeline's ``data.holdout`` (5 %)
    gives the held-out normals ``val`` used for model selection.

    Capabilities: ``embed`` (the net's embedding), ``export`` (front-end + net + the cross-entropy
    at the clip's own class in one graph; with ``score.kind: backend`` the graph returns the
    embedding and the back-end scores it)."""

    name = "osscl"
    capabilities = frozenset({"embed", "export"})
    fixed_length = True
    classes = "section"
    one_class = "refuse"
    #: ``auscult fit``: recipes/synthetic/osscl.yaml's CPU budget
    fit_defaults = {
        "features": {"n_mels": 64, "stft_precision": "float32", "normalize": "global"},
        "net": {"name": "mobilefacenet", "activation": "relu", "emb_dim": 128},
        "train": {"epochs": 6, "batch_size": 32, "optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01,
                  "schedule": "cosine", "ema": {"decay": 0.99, "warmup": True}, "log_every": 10},
        "score": {"kind": "cross_entropy", "margin": False, "batch_size": 32, "recalibrate_bn": True},
    }

    def __init__(self, config: dict[str, Any], context: Any = None):
        super().__init__(config, context)
        self.opts = {k: merge_section(v, config.get(k), k) for k, v in OSSCL_DEFAULTS.items()}
        if self.opts["score"]["kind"] not in SCORE_KINDS:
            raise ConfigError(f"osscl: score.kind must be one of {SCORE_KINDS}, got {self.opts['score']['kind']!r}")
        from ..losses.heads import FPH_LAYOUTS
        from ..losses.supcon import SUPCON_ANCHORS

        lo = self.opts["loss"]
        for key, value, allowed in (("loss.arcmix.input", lo["arcmix"]["input"], ARCMIX_INPUTS),
                                    ("loss.head.layout", lo["head"]["layout"], FPH_LAYOUTS),
                                    ("loss.supcon.anchors", lo["supcon"]["anchors"], SUPCON_ANCHORS),
                                    ("loss.supcon.reduction", lo["supcon"]["reduction"], ("mean", "sum"))):
            if value not in allowed:
                raise ConfigError(f"osscl: {key} must be one of {allowed}, got {value!r}")
        net = dict(config.get("net") or {"name": "mobilefacenet"})
        self.net_name = str(net.pop("name", "mobilefacenet"))
        self.net_kwargs = net
        from ..nets import NETS

        NETS.get(self.net_name)  # typed error for unknown nets
        nu.check_net_kwargs(self.net_name, {k: v for k, v in net.items() if k not in ("n_fft", "hop_length", "n_mels")})
        self.two_inputs = self.net_name in TWO_INPUT_NETS
        self.features_cfg = dict(config.get("features") or {})
        self.normalize = str(self.features_cfg.pop("normalize", "none"))
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"osscl: features.normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        nu.build_frontend_from_recipe(self.features_cfg)  # validate early
        self.train_section, self.train_own = split_own_train_keys(config.get("train"))
        self.ema_cfg = parse_ema(self.train_own.get("ema"))
        nu.split_train_section(self.train_section, self.context)
        self.backend_cfg = config.get("backend")
        self.n_samples: Optional[int] = None
        self.classes: list[str] = []
        self.model: Optional[OSSCLModel] = None
        self.backend: Any = None
        self.train_embeddings: Optional[np.ndarray] = None
        self.train_meta: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.selected: str = ""
        self._fast: Optional[OSSCLModel] = None  # inference copy of the scoring weights (see _scorer)

    # ---- building ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        from ..engine.runtime import resolve_device

        return resolve_device(str(self.context.device))

    def _build_model(self) -> OSSCLModel:
        from ..losses import FeaturePerturbationHead, NoisyArcMix

        assert self.n_samples is not None
        frontend = nu.build_frontend_from_recipe(self.features_cfg)
        fc = frontend.config
        if self.two_inputs:
            for k, v in (("n_fft", fc.n_fft), ("hop_length", fc.hop_length), ("n_mels", fc.n_mels)):
                if k in self.net_kwargs and int(self.net_kwargs[k]) != int(v):
                    raise ConfigError(f"osscl: net.{k}={self.net_kwargs[k]} differs from features.{k}={v}")
        kwargs = {k: v for k, v in self.net_kwargs.items() if k not in ("n_fft", "hop_length", "n_mels")}
        net = nu.build_net(self.net_name, kwargs, nu.geometry(self.config, frontend, self.n_samples))
        emb_dim = int(net.output_shape[0])
        lo = self.opts["loss"]
        head = FeaturePerturbationHead(emb_dim, int(lo["head"]["bottleneck"]), str(lo["head"]["activation"]),
                                       layout=str(lo["head"]["layout"]))
        arc = NoisyArcMix(emb_dim, len(self.classes), scale=float(lo["arcmix"]["scale"]),
                          margin=float(lo["arcmix"]["margin"]))
        return OSSCLModel(frontend, net, head, arc, self.two_inputs, arcmix_input=str(lo["arcmix"]["input"]))

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "OSSCL":
        from ..data.datasets import ClipDataset
        from ..engine.optim import build_optimizer
        from ..engine.trainer import Trainer

        train, val = list(train), list(val)
        self.n_samples = nu.start_fit("osscl", train, audio, seed=int(self.context.seed))
        self.classes = sorted({section_class(c) for c in train})
        cid = {k: i for i, k in enumerate(self.classes)}
        targets = [cid[section_class(c)] for c in train]
        if len(self.classes) < 2:
            log.warning("osscl: a single class (%s); the classifier loss is trivial - train one model for "
                        "several machine types/sections (model_per: all)", self.classes[0])
        self._val_classes_ok(val)
        self.model = self._build_model().to(self.device)
        self._fast = None
        if self.normalize == "global":
            self._set_feature_stats(train, audio)
        tcfg, ocfg, ld = nu.split_train_section(self.train_section, self.context)
        n = len(train)
        bs = min(int(ld["batch_size"]), n)
        ds = ClipDataset(train, audio, targets=targets)
        loader = nu.loader_for(ds, bs, shuffle=True, drop_last=n > bs and n % bs == 1, num_workers=ld["num_workers"])

        def step_fn(batch, model, state):
            x, y, _ = batch
            # randomness from the global RNG: the trainer checkpoints it (exact resume)
            return self.training_loss(getattr(model, "module", model), x, y)

        val_fn = None
        if val:
            val_wave = audio.batch(val)
            val_y = torch.as_tensor([cid[section_class(c)] for c in val], dtype=torch.long)

            def val_fn(model, state):
                model = getattr(model, "module", model)
                s = self._ce_scores(model, val_wave, val_y)
                return {"val_loss": float(s.mean())}

        opt = build_optimizer(self.model, ocfg)
        # scheduler_interval 'epoch' = the OS-SCL code's CosineAnnealingLR(T_max=epochs)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        ema = build_ema(self.model, self.ema_cfg)
        best = BestWeights()
        run_dir = nu.stage_run_dir(self.context, "osscl")
        trainer = Trainer(self.model, step_fn, loader, opt, sched, tcfg, run_dir=run_dir, val_fn=val_fn, ema=ema,
                          callbacks=[best])
        self.history = trainer.fit()
        self.selected = restore_selected(self.model, trainer, best, run_dir)
        if self.opts["score"]["recalibrate_bn"]:
            recalibrate_batchnorm(self.model, train, audio, int(self.opts["score"]["batch_size"]), self.device)
            self.selected += " + BN recalibrated"
        log.info("osscl: scoring with %s weights", self.selected)
        self.model.eval()
        self.train_meta = [{**r, "class": section_class(c)} for r, c in zip(nu.clip_meta(train), train)]
        if self.opts["score"]["kind"] == "backend":
            self.train_embeddings = self.embed(train, audio)
            self._fit_backend()
        return self

    def _val_classes_ok(self, val: Sequence[Clip]) -> None:
        unknown = sorted({section_class(c) for c in val} - set(self.classes))
        if unknown:
            raise DataError(f"osscl: held-out clips of classes {unknown} that have no training clips")

    def training_loss(self, model: OSSCLModel, x: torch.Tensor, y: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """OS-SCL's loss on one batch of waveforms ``x`` with class ids ``y`` (see the module
        docstring); also returns the two terms and the mixup ratio."""
        from ..augment import mixup

        mix = self.opts["augment"]["mixup"]
        with torch.no_grad():
            mel = model.logmel(x)
        m = mixup(x, alpha=float(mix["alpha"]), dist=str(mix["dist"]), p=float(mix["p"]), generator=generator)
        mel_mix = mixup(mel, perm=m.perm, lam=m.lam).x
        return self.mixed_loss(model, m.x, mel_mix, y, y[m.perm], m.lam)

    def mixed_loss(self, model: OSSCLModel, wave: torch.Tensor, mel: torch.Tensor, y_a: torch.Tensor,
                   y_b: torch.Tensor, lam: torch.Tensor | float, return_parts: bool = False
                   ) -> dict[str, torch.Tensor]:
        """The loss of an already mixed batch (waveforms ``wave``, log-mels ``mel``, labels ``y_a``
        / ``y_b``, ratio ``lam``): noisy SupCon on the head output with ``y_a`` + Noisy-ArcMix.

        ``return_parts=True`` also returns the graph's intermediate tensors (``emb`` the net's
        embedding, ``head_out`` the head output before normalisation, ``z`` after it, ``logits`` the
        margin logits at ``y_a``): call ``retain_grad()`` on them before ``backward`` to read their
        gradients."""
        from ..losses import SupConLoss

        lo = self.opts["loss"]
        emb = model.embed_inputs(wave, mel)
        head_out = model.head.project(emb)
        z = torch.nn.functional.normalize(head_out, dim=-1)
        supcon = SupConLoss(float(lo["supcon"]["temperature"]), float(lo["supcon"]["base_temperature"]),
                            anchors=str(lo["supcon"]["anchors"]), reduction=str(lo["supcon"]["reduction"]),
                            normalize=False)  # z is unit-norm already
        l_sup = supcon(z, y_a)  # noisy labels: every mixed sample keeps y_a
        c = model.classifier_input(emb, z)
        l_arc = model.arcmix(c, y_a, y_b, lam)
        loss = float(lo["supcon"]["weight"]) * l_sup + float(lo["arcmix"]["weight"]) * l_arc
        lam_t = torch.as_tensor(lam)
        out = {"loss": loss, "supcon": l_sup.detach(), "arcmix": l_arc.detach(), "lam": lam_t.detach()}
        if return_parts:
            out.update({"emb": emb, "head_out": head_out, "z": z, "logits": model.arcmix.logits(c, y_a),
                        "supcon_loss": l_sup, "arcmix_loss": l_arc})
        return out

    @torch.no_grad()
    def _set_feature_stats(self, clips: Sequence[Clip], audio: Any) -> None:
        """Global mean / std of the training clips' log-mels into the model's buffers."""
        assert self.model is not None
        mean, std = nu.feature_stats(self.model.frontend, clips, audio, int(self.opts["score"]["batch_size"]),
                                     self.device)
        self.model.mel_mean.fill_(mean)
        self.model.mel_std.fill_(std)

    # ---- scoring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _ce_scores(self, model: OSSCLModel, wave: torch.Tensor, y: torch.Tensor,
                   mel: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Cross-entropy of each clip at its own class, ``[B]`` (eval mode, batches of
        ``score.batch_size``; the additive margin at the own class with ``score.margin``). ``mel``:
        the clips' log-mels when already computed (default: the model's front-end)."""
        was = model.training
        model.eval()
        out = []
        bs = int(self.opts["score"]["batch_size"])
        dev = next(model.parameters()).device
        for i in range(0, wave.shape[0], bs):
            wi = wave[i:i + bs].to(dev)
            yi = y[i:i + bs].to(dev)
            mi = model.logmel(wi) if mel is None else mel[i:i + bs].to(dev)
            logits = model.class_logits(wi, mi, yi, margin=bool(self.opts["score"]["margin"]))
            out.append(cross_entropy_at(logits, yi).cpu())
        model.train(was)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def _check_ready(self) -> OSSCLModel:
        if self.model is None:
            raise ConfigError("osscl: call fit() (or load_state_dict()) before embed()/score()")
        return self.model

    def _scorer(self) -> OSSCLModel:
        """The scoring weights as an inference copy (batch norm folded into the convolutions,
        ``channels_last``; :func:`auscult.nets.inference.inference_copy`), built once after
        fit/load: ~1.5x the clips/s of the eval-mode model on CPU, same scores to float rounding."""
        from ..nets.inference import inference_copy

        model = self._check_ready().to(self.device)
        if self._fast is None:
            self._fast = inference_copy(model.eval())
        return self._fast

    def _check_length(self, xb: torch.Tensor) -> None:
        if xb.shape[1] != self.n_samples:
            raise DataError(f"osscl: clips of {xb.shape[1]} samples but the model was built for {self.n_samples}; "
                            "use the recipe's audio settings (length/duration)")

    @torch.no_grad()
    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """The net's embeddings ``[N, E]`` (eval mode, selected weights)."""
        model = self._scorer()
        rows = []
        for _, xb in audio.iter_batches(list(clips), int(self.opts["score"]["batch_size"])):
            self._check_length(xb)
            rows.append(model(xb.to(self.device)).float().cpu().numpy())
        return np.concatenate(rows, 0) if rows else np.zeros((0, 0), np.float32)

    def _fit_backend(self) -> None:
        assert self.train_embeddings is not None
        self.backend = nu.build_backend(self.backend_cfg, {"name": "knn", "k": 1, "metric": "cosine",
                                                           "group_by": "section"})
        meta = nu.meta_from_state(self.train_meta)
        self.backend.fit(self.train_embeddings, meta)

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """One score per clip, higher = more anomalous (see ``score.kind``)."""
        from ..backends import BackendMeta

        model = self._scorer()
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        cid = {k: i for i, k in enumerate(self.classes)}
        for c in clips:
            if section_class(c) not in cid:
                raise DataError(f"{c.path}: osscl was not trained on {section_class(c)} "
                                f"(trained classes: {self.classes})")
        if self.opts["score"]["kind"] == "backend":
            emb = self.embed(clips, audio)
            return np.asarray(self.backend.score(emb, BackendMeta.from_clips(clips)), dtype=np.float64)
        out = []
        bs = int(self.opts["score"]["batch_size"])
        for sl, xb in audio.iter_batches(clips, bs):
            self._check_length(xb)
            y = torch.as_tensor([cid[section_class(c)] for c in clips[sl]], dtype=torch.long)
            out.append(self._ce_scores(model, xb, y).numpy())
        return np.concatenate(out).astype(np.float64)

    def scoring_graph(self, clip: Clip) -> ScoringGraph:
        """Front-end + net (inference copy) and the cross-entropy at ``clip``'s own class (or the
        embedding, for ``score.kind: backend``), for clips of the recipe's length."""
        cid = {k: i for i, k in enumerate(self.classes)}
        if section_class(clip) not in cid:
            raise DataError(f"osscl was not trained on {section_class(clip)} (trained classes: {self.classes})")
        model = copy.deepcopy(self._scorer()).to("cpu").eval()
        model.frontend = nu.build_frontend_from_recipe({**self.features_cfg, "stft_impl": "conv"})
        meta = {"machine": clip.machine, "section": clip.section, "domain": clip.domain}
        if self.opts["score"]["kind"] == "backend":
            return ScoringGraph(model, "embedding", self.sample_rate, n_samples=self.n_samples, meta=meta,
                                backends=[{"state": backend_to_state(self.backend),
                                           "columns": [0, int(self.model.net.output_shape[0])]}])
        return ScoringGraph(_OwnClassCE(model, cid[section_class(clip)], bool(self.opts["score"]["margin"])),
                            "score", self.sample_rate, n_samples=self.n_samples, meta=meta)

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            raise ConfigError("osscl: nothing to save before fit()")
        return {
            "method": self.name, "version": 1, "n_samples": self.n_samples, "classes": list(self.classes),
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "train_embeddings": None if self.train_embeddings is None else np.array(self.train_embeddings),
            "train_meta": [dict(r) for r in self.train_meta],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..engine.checkpoint import load_model_state

        if state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        self.n_samples = int(state["n_samples"])
        self.classes = list(state["classes"])
        self.model = self._build_model()
        self._fast = None
        load_model_state(self.model, state["model"], source="osscl state")
        self.model.to(self.device).eval()
        self.train_meta = [dict(r) for r in state["train_meta"]]
        emb = state.get("train_embeddings")
        self.train_embeddings = None if emb is None else np.asarray(emb, dtype=np.float32)
        if self.opts["score"]["kind"] == "backend":
            if self.train_embeddings is None:
                raise CheckpointError("osscl state has no training embeddings but score.kind is 'backend'; "
                                      "refit, or score with kind 'cross_entropy'")
            self._fit_backend()


class _OwnClassCE(nn.Module):
    """OS-SCL's score as a module: ``-log softmax(s * cos(e, W))[own class]`` of waveforms ``[B, T]``."""

    def __init__(self, model: OSSCLModel, class_index: int, margin: bool):
        super().__init__()
        self.model = model
        self.class_index = int(class_index)
        self.margin = bool(margin)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        emb = self.model(waveform)
        y = torch.full((emb.shape[0],), self.class_index, dtype=torch.long, device=emb.device)
        if self.margin:
            logits = self.model.arcmix.logits(emb, y)
        else:
            logits = self.model.arcmix.scale * self.model.arcmix.cosine(emb)
        return -torch.log_softmax(logits.double(), dim=1)[:, self.class_index]
