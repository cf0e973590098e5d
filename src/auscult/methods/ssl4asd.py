"""SSL4ASD: self-supervised learning with statistics exchange and feature exchange.

One dual-branch network for all machine types (``model_per: all``): the whole-clip magnitude
spectrum and the linear STFT magnitude (1024 / 512) of a waveform each go through their own
branch to a 128-d embedding; the 256-d concatenation is the clip embedding
(:class:`~auscult.nets.DualBranchNet`). Classes = ``machine/section/domain/attribute set``.

Per training batch of waveforms ``x`` with class ids ``y`` (``C`` classes):

1. **Mixup** on the waveform with probability 0.5 per sample, ``lam ~ U(0, 1)``; soft labels
   ``y_mix = lam y + (1 - lam) y[perm]``.
2. Spectrum and STFT magnitude of the (mixed) waveform; **statistics exchange** on the STFT
   magnitude (each frame's mean / std over frequency replaced by a partner's, per sample with
   probability 0.5) with the ``[y, 0, 0]`` / ``[0, y/2, y_partner/2]`` labels over ``3C`` columns.
3. Branch embeddings ``(e_spec, e_stft)``; ``e = [e_spec, e_stft]``.
4. ``L(x, y)``: sub-cluster AdaCos (16 sub-clusters per class, **fixed** random centres) on
   ``e`` with the mixup labels ``y_mix``.
5. **Feature exchange**: per sample with probability 0.5, the spectrogram half of ``e`` is swapped
   with a partner's (the spectrum half is kept) and the ``3C`` labels become ``9C`` labels;
   ``L(x_new, y_new)``: sub-cluster AdaCos with **trainable** centres over the ``9C`` classes.
6. Loss = ``L(x, y) + L(x_new, y_new)``; Adam lr 1e-3, batch 64, 10 epochs.

Back-end per section (:class:`~auscult.backends.kmeans.KMeansBackend`): k-means with 16 means on
the section's source training embeddings plus every target training embedding as a centre;
score = minimum cosine distance to a centre. ``ensemble.size = N`` trains ``N`` models with seeds
``seed, seed + 1, ...`` and averages their scores (the paper's eval result is an ensemble of 5).

Stop rule: the paper trains a fixed 10 epochs (its recipes hold nothing out). With held-out training
normals (``val``, the recipe's ``data.holdout``), ``val_loss`` is recorded after every epoch, the
epoch with the lowest one is kept (``selected``) and ``train.patience`` epochs without improvement stop
the member. ``val_loss`` (:meth:`SSL4ASD.heldout_losses`, eval mode) is both terms of the training
loss on the held-out clips without mixup, each clip once as it is and once statistics-exchanged, then
each embedding once as it is and once feature-exchanged, with the same partners every epoch
(``val_loss_class`` and ``val_loss_exchange`` are the two terms). With one class the first term is 0
and the exchange term is the signal.

Options that select between auscult's defaults and the published code (docs/methods/ssl4asd.md has
the table): ``net`` (the dual-branch net's ``layout``, ``norm``, ``se_reduction``,
``temporal_norm``, ``freq_bins``, ``spectrum_dense``, ``spectrum_conv_norm``, ``spectrum_padding``),
``features.normalized`` (STFT divided by the window's norm, as the DCASE ASD toolkit),
``augment.partner`` (``random``: mixup with a random permutation, exchanges with a random
derangement; ``permutation``: every partner from a fresh random permutation, fixed points allowed,
as the DCASE ASD toolkit; ``reverse``: every partner is the batch in reverse order, as the SSL4ASD
code),
``loss.adaptive_scale`` / ``loss.scale_rule`` (the sub-cluster AdaCos scale: re-estimated per batch
by auscult's safeguarded rule or the toolkit's / SSL4ASD code's rule, or kept fixed).

With a single class (one machine, one section, one attribute set) the classification term carries
no signal and the net learns from the statistics- and feature-exchange tasks only (their labels
still tell an exchanged clip from an original); ``auscult fit`` says so in its report.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from . import _neural as nu
from ._neural import split_own_train_keys
from .base import METHODS, Method, backend_from_state, backend_to_state, merge_section

log = logging.getLogger("auscult.methods.ssl4asd")

SSL_DEFAULTS: dict[str, dict[str, Any]] = {
    "augment": {
        "mixup": {"alpha": 1.0, "dist": "uniform", "p": 0.5},
        "statistics_exchange": {"p": 0.5},
        "feature_exchange": {"p": 0.5},
        "partner": "random",
    },
    "loss": {"n_subclusters": 16, "ssl_weight": 1.0, "max_scale": 64.0, "adaptive_scale": True,
             "scale_rule": "auscult"},
    "ensemble": {"size": 1},
    "score": {"batch_size": 32},
}
BACKEND_DEFAULT = {"name": "kmeans", "n_clusters": 16, "n_init": 10, "group_by": "section"}
#: ``net:`` keys passed to the dual-branch net (besides ``name``)
NET_KEYS = ("layout", "norm", "se_reduction", "temporal_norm", "freq_bins", "spectrum_dense", "spectrum_conv_norm",
            "spectrum_padding")
PARTNER_KINDS = ("random", "permutation", "reverse")


def attribute_class(clip: Clip) -> str:
    """SSL4ASD's class of a clip: ``machine/section/domain/attribute set``."""
    return f"{clip.machine}/{clip.section}/{clip.domain or 'source'}/{clip.attribute_key}"


class SSLModel(nn.Module):
    """Front-ends (clip spectrum, STFT magnitude) + dual-branch net + the two sub-cluster AdaCos heads."""

    def __init__(self, n_samples: int, n_classes: int, features: dict[str, Any], n_subclusters: int,
                 max_scale: float, seed: int, net: Optional[dict[str, Any]] = None, adaptive_scale: bool = True,
                 scale_rule: str = "auscult", audio: Optional[dict[str, Any]] = None):
        super().__init__()
        from ..features import ClipSpectrum, FeatureConfig, LinearSpectrogram
        from ..losses import SubClusterAdaCos
        from ..nets import ClipGeometry, build_for_clip

        features = dict(features)
        normalized = bool(features.pop("normalized", False))
        try:
            cfg = FeatureConfig.from_dict(features)
        except TypeError as e:  # pragma: no cover
            raise ConfigError(f"features: {e}") from None
        self.spectrum = ClipSpectrum(cfg, keep_nyquist=False)
        self.stft = LinearSpectrogram(cfg, power=1.0, normalized=normalized)
        self.net = build_for_clip("dualbranch", ClipGeometry.from_configs(audio, cfg, n_samples=n_samples),
                                  **(net or {}))
        d = int(self.net.output_shape[0])
        self.split = int(self.net.branch_dim)
        self.n_classes = int(n_classes)
        self.adacos = SubClusterAdaCos(d, n_classes, n_subclusters, trainable_centers=False, max_scale=max_scale,
                                       seed=seed, adaptive=adaptive_scale, scale_rule=scale_rule)
        self.adacos_ssl = SubClusterAdaCos(d, 9 * n_classes, n_subclusters, trainable_centers=True,
                                           max_scale=max_scale, seed=seed + 1, adaptive=adaptive_scale,
                                           scale_rule=scale_rule)

    def inputs(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clip spectrum [B, T//2], STFT magnitude [B, F, frames])``."""
        return self.spectrum(wave), self.stft(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.net(*self.inputs(wave))


@METHODS.register("ssl4asd", defaults={**SSL_DEFAULTS, "net": None, "train": None},
                  description="SSL4ASD: dual-branch net, mixup + statistics/feature exchange, sub-cluster AdaCos; "
                              "k-means back-end per section; ensembles")
class SSL4ASD(Method):
    """SSL4ASD (see the module docstring). Recipe sections: ``features`` (n_fft, hop_length for the
    STFT branch), ``augment``, ``loss``, ``train``, ``ensemble``, ``score``, ``backend``.

    Capabilities: ``embed`` (the first member's 256-d embedding). Not ``export``: the spectrum branch
    takes the FFT of the whole clip (in float64), which the ONNX exporter auscult uses (opset 17,
    TorchScript) has no operator for, and a DFT as a matrix product would hold ``T x T/2`` weights."""

    name = "ssl4asd"
    capabilities = frozenset({"embed"})
    fixed_length = True
    classes = "attribute"
    one_class = ("learns from the statistics- and feature-exchange tasks only (one class gives the classification "
                 "term no signal)")
    #: ``auscult fit``: recipes/synthetic/ssl4asd.yaml's CPU budget (windows of at least ~4.4 s: the
    #: spectrum branch needs them)
    fit_defaults = {
        "features": {"n_fft": 512, "hop_length": 512, "stft_precision": "float32"},
        "train": {"epochs": 4, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "log_every": 10},
        "ensemble": {"size": 1},
        "backend": {"name": "kmeans", "n_clusters": 16, "n_init": 10, "group_by": "section"},
    }

    def __init__(self, config: dict[str, Any], context: Any = None):
        super().__init__(config, context)
        self.opts = {k: merge_section(v, config.get(k), k) for k, v in SSL_DEFAULTS.items()}
        size = self.opts["ensemble"]["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"ssl4asd: ensemble.size must be a positive integer, got {size!r}")
        net = dict(config.get("net") or {})
        if net and net.get("name", "dualbranch") != "dualbranch":
            raise ConfigError(f"ssl4asd uses the dual-branch net; net.name {net.get('name')!r} is not supported")
        net.pop("name", None)
        bad = sorted(set(net) - set(NET_KEYS))
        if bad:
            raise ConfigError(f"ssl4asd: unknown net setting(s) {bad}; known: {sorted(NET_KEYS)}")
        self.net_kwargs = net
        if self.opts["augment"]["partner"] not in PARTNER_KINDS:
            raise ConfigError(f"ssl4asd: augment.partner must be one of {PARTNER_KINDS}, "
                              f"got {self.opts['augment']['partner']!r}")
        from ..losses.adacos import SCALE_RULES

        if self.opts["loss"]["scale_rule"] not in SCALE_RULES:
            raise ConfigError(f"ssl4asd: loss.scale_rule must be one of {SCALE_RULES}, "
                              f"got {self.opts['loss']['scale_rule']!r}")
        self.features_cfg = {k: v for k, v in dict(config.get("features") or {}).items() if k != "frontend"}
        self.train_section, self.train_own = split_own_train_keys(config.get("train"))
        if self.train_own.get("ema"):
            raise ConfigError("ssl4asd does not use an EMA of the weights (remove train.ema)")
        nu.split_train_section(self.train_section, self.context)
        self.backend_cfg = {**BACKEND_DEFAULT, **dict(config.get("backend") or {})}
        self.n_samples: Optional[int] = None
        self.classes: list[str] = []
        self.models: list[SSLModel] = []
        self.backends: list[Any] = []
        self.history: list[list[dict[str, Any]]] = []
        self.selected: list[str] = []  # per member: the weights kept (with held-out clips)

    @property
    def device(self) -> torch.device:
        from ..engine.runtime import resolve_device

        return resolve_device(str(self.context.device))

    def _build_model(self, seed: int) -> SSLModel:
        assert self.n_samples is not None
        lo = self.opts["loss"]
        return SSLModel(self.n_samples, len(self.classes), self.features_cfg, int(lo["n_subclusters"]),
                        float(lo["max_scale"]), seed, net=self.net_kwargs, adaptive_scale=bool(lo["adaptive_scale"]),
                        scale_rule=str(lo["scale_rule"]), audio=dict(self.config.get("audio") or {}))

    # ---- training step (public so tests can check one step) --------------------------------------
    def training_losses(self, model: SSLModel, x: torch.Tensor, y: torch.Tensor,
                        generator: Optional[torch.Generator] = None, return_parts: bool = False
                        ) -> dict[str, torch.Tensor]:
        """The two-term loss of one batch (see the module docstring) and its two terms.

        ``return_parts=True`` also returns the intermediate tensors: ``y_mix`` ``[B, C]``, ``y3``
        ``[B, 3C]``, ``emb`` ``[B, 256]``, ``emb_new`` (after feature exchange) and ``y9`` ``[B, 9C]``.
        """
        from ..augment import mix_labels, mixup, partner_of, with_feature_exchange, with_statistics_exchange

        aug = self.opts["augment"]
        c = model.n_classes
        mx = aug["mixup"]
        # partners: random draws (default: mixup a permutation, exchanges a derangement), fresh random
        # permutations for all three (the DCASE ASD toolkit), or the batch reversed (the SSL4ASD code)
        kind, b = aug["partner"], x.shape[0]

        def partners():
            if kind == "random":
                return None
            return partner_of(b, kind, generator).to(x.device)

        perm = partner_of(b, "reverse").to(x.device) if kind == "reverse" else None
        m = mixup(x, alpha=float(mx["alpha"]), dist=str(mx["dist"]), p=float(mx["p"]), per_sample=True,
                  generator=generator, perm=perm)
        y_mix = mix_labels(y, m.perm, m.lam, c)
        spec, stft = model.inputs(m.x)
        stft, y3 = with_statistics_exchange(stft, y_mix, p=float(aug["statistics_exchange"]["p"]),
                                            generator=generator, freq_dim=-2, perm=partners())
        emb = model.net(spec, stft)
        loss_x = model.adacos(emb, y_mix)
        emb_new, y9 = with_feature_exchange(emb, y3, split=model.split, p=float(aug["feature_exchange"]["p"]),
                                            generator=generator, perm=partners())
        loss_new = model.adacos_ssl(emb_new, y9)
        w = float(self.opts["loss"]["ssl_weight"])
        out = {"loss": loss_x + w * loss_new, "loss_x": loss_x.detach(), "loss_new": loss_new.detach(),
               "scale": model.adacos.scale.detach()}
        if return_parts:
            out.update({"y_mix": y_mix.detach(), "y3": y3.detach(), "emb": emb.detach(), "emb_new": emb_new.detach(),
                        "y9": y9.detach()})
        return out

    @torch.no_grad()
    def heldout_losses(self, model: SSLModel, x: torch.Tensor, y: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """The stop rule's loss of held-out clips ``x`` (waveforms) with class ids ``y``: both terms of
        the training loss without mixup, every clip counted once as it is and once exchanged.

        The statistics exchange (if its ``p`` > 0) appends a copy of the STFT batch with every clip's
        frame statistics taken from a partner; the first term is the sub-cluster AdaCos loss of all of
        these embeddings at their own class. The feature exchange (if its ``p`` > 0) then appends a
        copy with every spectrogram half taken from a partner; the second term is the exchange head's
        loss over the ``9C`` labels. With one class the first term is 0 by construction and the
        second still measures how well held-out clips tell original from exchanged: the signal the
        net is trained on. Partners come from ``generator`` (the caller seeds it the same way every
        epoch). A single clip has no partner: only the first term is computed."""
        from ..augment import partner_of, with_feature_exchange, with_statistics_exchange
        from ..augment.exchange import original_labels
        from ..losses.base import as_soft_labels

        aug = self.opts["augment"]
        c = model.n_classes
        kind = "derangement" if aug["partner"] == "random" else aug["partner"]
        b = x.shape[0]
        yc = as_soft_labels(y, c, dtype=torch.float32)
        spec, stft = model.inputs(x)
        pair = b >= 2
        if pair and float(aug["statistics_exchange"]["p"]) > 0:
            stft, y3 = with_statistics_exchange(stft, yc, append=True, freq_dim=-2,
                                                perm=partner_of(b, kind, generator).to(x.device))
            spec, yc = torch.cat([spec, spec]), torch.cat([yc, yc])
        else:
            y3 = original_labels(yc)
        emb = model.net(spec, stft)
        loss_x = model.adacos(emb, yc)  # as in training: an exchanged clip keeps its own class here
        if not pair:
            loss_new = torch.zeros((), device=x.device)
        elif float(aug["feature_exchange"]["p"]) > 0:
            emb_new, y9 = with_feature_exchange(emb, y3, split=model.split, append=True,
                                                perm=partner_of(emb.shape[0], kind, generator).to(x.device))
            loss_new = model.adacos_ssl(emb_new, y9)
        else:
            loss_new = model.adacos_ssl(emb, original_labels(y3))
        w = float(self.opts["loss"]["ssl_weight"])
        return {"val_loss": loss_x + w * loss_new, "val_loss_class": loss_x, "val_loss_exchange": loss_new}

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "SSL4ASD":
        from ..backends import BackendMeta

        train = list(train)
        self.n_samples = nu.start_fit("ssl4asd", train, audio)
        self.classes = sorted({attribute_class(c) for c in train})
        cid = {k: i for i, k in enumerate(self.classes)}
        targets = [cid[attribute_class(c)] for c in train]
        self.models, self.backends, self.history, self.selected = [], [], [], []
        meta = BackendMeta.from_clips(train)
        for member in range(int(self.opts["ensemble"]["size"])):
            seed = int(self.context.seed) + member
            model = self._train_member(train, targets, list(val), audio, seed, member)
            self.models.append(model)
            emb = self._embed_with(model, train, audio)
            self.backends.append(nu.build_backend(self.backend_cfg, {"name": "kmeans"}).fit(emb, meta))
        return self

    def _train_member(self, train: list[Clip], targets: list[int], val: list[Clip], audio: Any, seed: int,
                      member: int) -> SSLModel:
        from ..data.datasets import ClipDataset
        from ..engine.optim import build_optimizer
        from ..engine.runtime import seed_everything
        from ..engine.trainer import Trainer

        seed_everything(seed)
        model = self._build_model(seed).to(self.device)
        ctx = self.context
        tcfg, ocfg, ld = nu.split_train_section(self.train_section, ctx)
        tcfg.seed = seed
        n = len(train)
        bs = min(int(ld["batch_size"]), n)
        ds = ClipDataset(train, audio, targets=targets)
        loader = nu.loader_for(ds, bs, shuffle=True, drop_last=n > bs and n % bs == 1, num_workers=ld["num_workers"])

        def step_fn(batch, net, state):
            net = getattr(net, "module", net)
            x, y, _ = batch
            return self.training_losses(net, x, y)

        val_fn = None
        vals = [c for c in val if attribute_class(c) in set(self.classes)]
        if vals:
            cid = {k: i for i, k in enumerate(self.classes)}
            vw = audio.batch(vals)
            vy = torch.as_tensor([cid[attribute_class(c)] for c in vals], dtype=torch.long)
            # chunks of at most the batch size, none of a single clip (an exchange needs a partner)
            chunks = np.array_split(np.arange(len(vals)), max(1, min(-(-len(vals) // bs), len(vals) // 2)))
            val_seed = seed + 7919  # the same partners in every epoch: the curve moves with the weights only

            def val_fn(net, state):
                net = getattr(net, "module", net)
                dev = next(net.parameters()).device
                gen = torch.Generator().manual_seed(val_seed)
                tot = {"val_loss": 0.0, "val_loss_class": 0.0, "val_loss_exchange": 0.0}
                for idx in chunks:
                    ix = torch.as_tensor(idx, dtype=torch.long)
                    parts = self.heldout_losses(net, vw[ix].to(dev), vy[ix].to(dev), gen)
                    for k in tot:
                        tot[k] += float(parts[k]) * len(idx)
                return {k: v / len(vals) for k, v in tot.items()}

        opt = build_optimizer(model, ocfg)
        sched = nu.build_schedule(opt, ocfg, ld, len(loader), tcfg.epochs, tcfg.scheduler_interval)
        stage = "ssl4asd" if int(self.opts["ensemble"]["size"]) == 1 else f"ssl4asd_{member}"
        run_dir = nu.stage_run_dir(ctx, stage)
        best = nu.BestWeights()
        trainer = Trainer(model, step_fn, loader, opt, sched, tcfg, run_dir=run_dir, val_fn=val_fn, callbacks=[best])
        self.history.append(trainer.fit())
        if val_fn is not None:
            self.selected.append(nu.restore_selected(model, trainer, best, run_dir, use_ema=False))
            log.info("ssl4asd member %d: weights of %s (val_loss on %d held-out clips)", member, self.selected[-1],
                     len(vals))
        return model.eval()

    # ---- embed / score ---------------------------------------------------------------------------
    @torch.no_grad()
    def _embed_with(self, model: SSLModel, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        from ..nets.inference import inference_copy

        model = inference_copy(model.to(self.device).eval())  # batch norm folded, channels_last
        rows = []
        for _, xb in audio.iter_batches(list(clips), int(self.opts["score"]["batch_size"])):
            if xb.shape[1] != self.n_samples:
                raise DataError(f"ssl4asd: clips of {xb.shape[1]} samples but the model was built for "
                                f"{self.n_samples}; use the recipe's audio settings (length/duration)")
            rows.append(model(xb.to(self.device)).float().cpu().numpy())
        return np.concatenate(rows, 0) if rows else np.zeros((0, 0), np.float32)

    def _check_ready(self) -> None:
        if not self.models:
            raise ConfigError("ssl4asd: call fit() (or load_state_dict()) before embed()/score()")

    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """256-d embeddings of the first ensemble member (spectrum half, then spectrogram half)."""
        self._check_ready()
        return self._embed_with(self.models[0], clips, audio)

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Mean over ensemble members of the k-means back-end score (min cosine distance)."""
        from ..backends import BackendMeta

        self._check_ready()
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        meta = BackendMeta.from_clips(clips)
        total = np.zeros(len(clips), dtype=np.float64)
        for model, be in zip(self.models, self.backends):
            total += np.asarray(be.score(self._embed_with(model, clips, audio), meta), dtype=np.float64)
        return total / len(self.models)

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check_ready()
        return {
            "method": self.name, "version": 1, "n_samples": self.n_samples, "classes": list(self.classes),
            "models": [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in self.models],
            "backends": [backend_to_state(b) for b in self.backends],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ..engine.checkpoint import load_model_state

        if state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        if len(state["models"]) != len(state["backends"]):
            raise CheckpointError("ssl4asd state: different numbers of models and back-ends")
        self.n_samples = int(state["n_samples"])
        self.classes = list(state["classes"])
        self.models = []
        for i, sd in enumerate(state["models"]):
            m = self._build_model(int(self.context.seed) + i)
            load_model_state(m, sd, source=f"ssl4asd state (member {i})")
            self.models.append(m.to(self.device).eval())
        self.backends = [backend_from_state(b) for b in state["backends"]]

