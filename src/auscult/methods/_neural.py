"""Helpers shared by the neural methods of this package (autoencoder, CLSIA, OS-SCL, ProtoASD, SSL4ASD).

Nothing here is a method; the pieces every embedding method needs around the engine:

* :func:`split_train_section` — a recipe's ``train:`` section split into the engine's
  :class:`~auscult.engine.TrainConfig`, an :class:`~auscult.engine.optim.OptimConfig` and the
  loader settings (``batch_size``, ``num_workers``), with the ``multistep`` schedule
  (``milestones`` in epochs, ``gamma``) that the engine's closed-form schedules lack;
* :func:`build_frontend_from_recipe` — the ``features:`` section as a front-end module;
* :func:`clip_length` — the fixed clip length the nets are built for (from the audio config, else
  from the first training clip);
* :func:`stage_run_dir` — a sub-folder of the group's run directory for a training stage's
  checkpoints, or ``None`` when the method runs without a run directory;
* :func:`clip_meta` / :func:`meta_from_state` — the per-clip metadata kept in ``state_dict`` so a
  back-end can be refitted exactly after loading;
* :func:`build_net` — a net from the registry, built for the clip geometry of the recipe
  (:meth:`~auscult.nets.ClipGeometry.from_configs`), never for a constructor's defaults;
* :func:`split_own_train_keys` / :func:`parse_ema` / :func:`build_ema` — ``train.ema`` (an EMA of
  the weights) on top of the engine's keys;
* :class:`BestWeights` / :func:`restore_selected` — model selection on held-out normals (the best
  epoch's weights, EMA weights when an EMA runs);
* :func:`recalibrate_batchnorm` — batch-norm running statistics re-estimated on clean training clips.
"""

from __future__ import annotations

import bisect
import logging
import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from ..data.clip import Clip
from ..errors import ConfigError

log = logging.getLogger("auscult.methods")

#: keys of a recipe's ``train:`` section that go to the optimiser / schedule
OPTIM_KEYS = {"optimizer": "name", "lr": "lr", "weight_decay": "weight_decay", "momentum": "momentum",
              "nesterov": "nesterov", "betas": "betas", "eps": "eps", "schedule": "schedule",
              "warmup_steps": "warmup_steps", "eta_min": "eta_min", "step_size": "step_size", "gamma": "gamma"}
#: keys handled here (not by the engine's TrainConfig)
LOADER_KEYS = ("batch_size", "num_workers", "milestones", "threads")
#: keys of TrainConfig a recipe may set (device/seed/resume come from the FitContext)
TRAIN_KEYS = ("epochs", "amp", "grad_clip", "scheduler_interval", "log_every", "checkpoint_every_steps",
              "keep_epoch_checkpoints", "monitor", "monitor_mode", "patience", "min_delta", "eval_with_ema")


def split_train_section(train: Mapping[str, Any] | None, context: Any, what: str = "train"
                        ) -> tuple[Any, Any, dict[str, Any]]:
    """Split a recipe's ``train:`` mapping into ``(TrainConfig, OptimConfig, loader_settings)``.

    ``schedule: multistep`` with ``milestones: [50, 90]`` (epochs) and ``gamma`` is supported on
    top of the engine's schedules (see :func:`build_schedule`). Unknown keys raise
    :class:`ConfigError` naming the section.
    """
    from ..engine.optim import OptimConfig
    from ..engine.trainer import TrainConfig

    train = dict(train or {})
    known = set(OPTIM_KEYS) | set(LOADER_KEYS) | set(TRAIN_KEYS)
    unknown = sorted(set(train) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {unknown}; known: {sorted(known)}")
    optim = {OPTIM_KEYS[k]: v for k, v in train.items() if k in OPTIM_KEYS}
    multistep = str(optim.get("schedule", "constant")).lower() == "multistep"
    if multistep:
        optim["schedule"] = "constant"  # the real schedule is built by build_schedule
    if "betas" in optim:
        optim["betas"] = tuple(optim["betas"])
    ocfg = OptimConfig.from_dict(optim)
    tcfg = TrainConfig.from_dict({
        **{k: train[k] for k in TRAIN_KEYS if k in train},
        "seed": int(getattr(context, "seed", 0)),
        "device": str(getattr(context, "device", "cpu")),
        "resume": bool(getattr(context, "resume", False)),
        "quiet": True if getattr(context, "quiet", False) else None,
    })
    loader = {"batch_size": int(train.get("batch_size", 32)), "num_workers": int(train.get("num_workers", 0)),
              "multistep": multistep, "milestones": [int(m) for m in train.get("milestones", [])],
              "threads": train.get("threads")}
    if loader["threads"] is not None and (isinstance(loader["threads"], bool) or int(loader["threads"]) < 1):
        raise ConfigError(f"{what}.threads must be a positive integer or null, got {loader['threads']!r}")
    if loader["batch_size"] < 1:
        raise ConfigError(f"{what}.batch_size must be >= 1, got {loader['batch_size']}")
    if multistep and not loader["milestones"]:
        raise ConfigError(f"{what}: schedule 'multistep' needs milestones (epochs), e.g. [50, 90]")
    if loader["milestones"] != sorted(loader["milestones"]):
        raise ConfigError(f"{what}.milestones must be increasing, got {loader['milestones']}")
    return tcfg, ocfg, loader


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (``None``: leave torch's setting), then restore it.

    A recipe's ``train.threads``: on a busy 2-core machine two threads made conv training steps
    5-15x slower than one (measured on this project's CI box); on a dedicated machine leave it null.
    """
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_schedule(optimizer: Any, ocfg: Any, loader: Mapping[str, Any], steps_per_epoch: int, epochs: int,
                   interval: str = "step") -> Any:
    """The learning-rate schedule, in units of the trainer's scheduler steps.

    ``interval`` is the recipe's ``train.scheduler_interval`` (the trainer's
    :attr:`~auscult.engine.TrainConfig.scheduler_interval`): ``step`` (the schedule is stepped after
    every optimiser step, so it spans ``steps_per_epoch * epochs`` steps) or ``epoch`` (stepped once
    per epoch: it spans ``epochs`` steps, and ``warmup_steps`` / ``step_size`` count epochs). Building a
    per-step span for a per-epoch schedule leaves the learning rate near its start value for the whole
    run (the bug this parameter fixes: every method passes ``tcfg.scheduler_interval``).

    ``multistep``: ``lr = base * gamma ** (number of milestones passed)`` with milestones given in
    epochs (e.g. ProtoASD's 0.1 / 0.01 / 0.001 for 50 / 40 / 30 epochs is ``lr: 0.1``,
    ``milestones: [50, 90]``, ``gamma: 0.1``). Otherwise the engine's closed-form schedules.
    """
    import torch

    from ..engine.optim import build_scheduler

    if interval not in ("step", "epoch"):
        raise ConfigError(f"train.scheduler_interval must be 'step' or 'epoch', got {interval!r}")
    per_epoch = 1 if interval == "epoch" else max(1, int(steps_per_epoch))
    if loader.get("multistep"):
        bounds = [int(m) * per_epoch for m in loader["milestones"]]
        gamma = float(ocfg.gamma)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: gamma ** bisect.bisect_right(bounds, t))
    return build_scheduler(optimizer, ocfg, total_steps=max(1, per_epoch * int(epochs)))


def build_frontend_from_recipe(features: Mapping[str, Any] | None, default: str = "logmel") -> Any:
    """``features:`` -> a front-end module; ``frontend`` picks it (``logmel``, ``inverted_logmel``),
    every other key is a :class:`~auscult.features.FeatureConfig` field."""
    from ..features import FeatureConfig, build_frontend

    feats = dict(features or {})
    name = str(feats.pop("frontend", default))
    if name not in ("logmel", "inverted_logmel"):
        raise ConfigError(f"features.frontend must be 'logmel' or 'inverted_logmel' here, got {name!r}")
    try:
        cfg = FeatureConfig.from_dict(feats)
    except TypeError as e:  # pragma: no cover - from_dict reports unknown keys itself
        raise ConfigError(f"features: {e}") from None
    return build_frontend(name, cfg)


def feature_stats(frontend: Any, clips: Sequence[Clip], audio: Any, batch_size: int, device: Any) -> tuple[float, float]:
    """Global mean and standard deviation of ``frontend``'s output over ``clips`` (float64 sums, one
    pass in batches of ``batch_size``): the log-mel standardisation the methods fit on training clips."""
    import torch

    if not clips:
        raise ConfigError("no training clips: cannot compute the feature mean/std")
    s = s2 = n = 0.0
    with torch.no_grad():
        for _, xb in audio.iter_batches(list(clips), int(batch_size)):
            f = frontend(xb.to(device)).double()
            s += float(f.sum())
            s2 += float((f * f).sum())
            n += f.numel()
    mean = s / n
    return mean, max(s2 / n - mean * mean, 1e-12) ** 0.5


def start_fit(method: str, train: Sequence[Clip], audio: Any, seed: Optional[int] = None) -> int:
    """The checks and set-up every neural method's ``fit`` starts with: at least 2 training clips
    (``DataError`` naming the method otherwise), the global RNGs seeded with ``seed`` (when given);
    returns the clip length in samples the network is built for (:func:`clip_length`)."""
    from ..errors import DataError

    if len(train) < 2:
        raise DataError(f"{method} needs at least 2 training clips, got {len(train)}")
    n = clip_length(train, audio)
    if seed is not None:
        from ..engine.runtime import seed_everything

        seed_everything(int(seed))
    return n


def clip_length(train: Sequence[Clip], audio: Any) -> int:
    """Samples per clip: the audio config's fixed length, else the first training clip's length."""
    n = getattr(audio, "n_samples", None)
    if n:
        return int(n)
    if not train:
        raise ConfigError("no training clips: cannot tell the clip length the network is built for")
    return int(audio.load(train[0]).shape[-1])  # [T] or [2, T] (channel: both)


def stage_run_dir(context: Any, stage: str) -> Optional[Any]:
    """``<context.run_dir>/<stage>`` as an engine RunDir for one training stage's checkpoints
    (``None`` when the method runs without a run directory). The pipeline's ``run_dir`` is already
    the group's folder (``<run>/models/<group>``)."""
    from ..engine.rundir import RunDir

    root = getattr(context, "run_dir", None)
    if root is None:
        return None
    path = Path(root) / stage
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    return RunDir(path)


def clip_meta(clips: Sequence[Clip]) -> list[dict[str, Any]]:
    """Plain per-clip metadata (machine, section, domain, attribute) for ``state_dict``."""
    return [{"machine": c.machine, "section": c.section, "domain": c.domain, "attribute": c.attribute_key}
            for c in clips]


def meta_from_state(rows: Sequence[Mapping[str, Any]]) -> Any:
    """A :class:`~auscult.backends.BackendMeta` from :func:`clip_meta` rows."""
    from ..backends import BackendMeta

    return BackendMeta(n=len(rows), section=[r["section"] for r in rows], domain=[r["domain"] for r in rows],
                       machine=[r["machine"] for r in rows], attribute=[r["attribute"] for r in rows])


def build_backend(section: Mapping[str, Any] | None, default: Mapping[str, Any]) -> Any:
    """A back-end from a recipe's ``backend:`` mapping (``name`` + its parameters)."""
    from ..backends import BACKENDS

    params = dict(default)
    params.update(dict(section or {}))
    name = params.pop("name")
    return BACKENDS.build(name, **params)


def loader_for(dataset: Any, batch_size: int, *, shuffle: bool, drop_last: bool, num_workers: int = 0,
               batch_sampler: Any = None, collate_fn: Any = None) -> Any:
    """A DataLoader stacking equal-length waveforms (default collate:
    :func:`auscult.data.datasets.collate_waveforms`)."""
    import torch

    from ..data.datasets import collate_waveforms

    collate = collate_fn or collate_waveforms
    if batch_sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                                           num_workers=num_workers)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                       collate_fn=collate, num_workers=num_workers)


# ------------------------------------------------------------------------------------------------
# nets from the clip geometry
# ------------------------------------------------------------------------------------------------
def geometry(config: Mapping[str, Any], frontend: Any, n_samples: int, **fields: Any) -> Any:
    """The :class:`~auscult.nets.ClipGeometry` of clips of ``n_samples`` samples through ``frontend``
    (its :class:`~auscult.features.FeatureConfig` gives n_fft, hop, mels and centring; the recipe's
    ``audio`` section the sample rate); ``fields`` set ``context`` / ``crop_frames``."""
    from ..nets import ClipGeometry

    return ClipGeometry.from_configs(dict(config.get("audio") or {}), frontend.config, n_samples=int(n_samples),
                                     **fields)


def net_settings(name: str) -> Optional[set[str]]:
    """The keyword arguments net ``name``'s constructor takes (``None``: it takes any)."""
    import inspect

    from ..nets import NETS

    params = inspect.signature(NETS.get(name).factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def check_net_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """:class:`ConfigError` for a recipe ``net:`` setting that net ``name`` does not take, naming the
    nets that do take it (e.g. ``net.readout`` is MobileFaceNet's) and the fix."""
    from ..nets import NETS

    known = net_settings(name)
    if known is None:
        return
    unknown = sorted(set(kwargs) - known - {"pretrained"})
    if not unknown:
        return
    key = unknown[0]
    takers = [n for n in NETS.names() if key in (net_settings(n) or ())]
    where = (f"net.{key} is a setting of {', '.join(takers)}: remove it or set net.name to one of them"
             if takers else f"remove net.{key}")
    raise ConfigError(f"net.{key}: not a setting of net {name} (its settings: {', '.join(sorted(known))}); {where}")


def build_net(name: str, kwargs: Mapping[str, Any], geo: Any) -> Any:
    """Net ``name`` built for the geometry ``geo`` (:func:`~auscult.nets.build_for_clip`); ``kwargs``
    are the recipe's other ``net:`` settings (a shape argument there is an error: it comes from the clip).

    ``net.pretrained: <name>`` (a shipped encoder, :data:`auscult.encoders.PRETRAINED`) initialises the
    net from that encoder's weights (:func:`pretrained_init`)."""
    from ..nets import build_for_clip, input_kwargs

    check_net_kwargs(name, kwargs)
    kwargs = dict(kwargs)
    pretrained = kwargs.pop("pretrained", None)
    shape_keys = set(input_kwargs(name, geo))
    clash = sorted(shape_keys & set(kwargs))
    if clash:
        raise ConfigError(f"net.{clash[0]} is computed from the clip (audio/features sections); remove it from net:")
    if pretrained is None:
        return build_for_clip(name, geo, **kwargs)
    return pretrained_init(str(pretrained), name, kwargs, geo)


#: the architecture settings a shipped encoder fixes (a recipe may repeat them, not change them)
_ENCODER_ARCH_KEYS = ("emb_dim", "width", "setting", "activation")


def pretrained_init(encoder: str, name: str, kwargs: Mapping[str, Any], geo: Any) -> Any:
    """Net ``name`` for ``geo`` with the architecture of the shipped encoder ``encoder`` and every
    weight of it whose shape fits, loaded (no network: package data).

    The encoder is a MobileFaceNet over a log-mel with its own STFT and mel settings, so the recipe
    must use ``net.name: mobilefacenet`` and the same ``sample_rate``, ``n_fft``, ``hop_length`` and
    ``n_mels`` (a :class:`ConfigError` names each difference and the fix); architecture settings
    in ``net:`` must be absent or equal to the encoder's. Every layer is loaded except the global
    depthwise convolution when the clip's feature map differs from the encoder's training crop (its
    kernel is that map's size): it keeps its fresh initialisation (logged). Only shipped names are
    accepted, so a run trained from one can be rebuilt anywhere (the weights come with the package).
    The encoder's own input normalisation (clip mean removed) is not the method's: this is an
    initialisation for training, not the frozen encoder of ``encoder_knn``.
    """
    import json

    import numpy as np
    import torch

    from ..encoders import PRETRAINED, pretrained_path
    from ..nets import build_for_clip

    if encoder not in PRETRAINED:
        raise ConfigError(f"net.pretrained: {encoder!r} is not a shipped encoder ({', '.join(PRETRAINED)}); "
                          f"runs must be rebuildable from the package alone, so paths are not accepted")
    if name != "mobilefacenet":
        raise ConfigError(f"net.pretrained: {encoder} is a MobileFaceNet; this recipe builds net.name: {name} "
                          f"(set net.name: mobilefacenet, or remove net.pretrained)")
    js = pretrained_path(encoder)
    head = json.loads(js.read_text())
    feats, arch = head["features"], dict(head["net"])
    arch.setdefault("activation", "relu")
    from ..encoders.cnn import SMALL_SETTING

    arch.setdefault("setting", [list(x) for x in SMALL_SETTING])
    wrong = [f"features.{k}: {getattr(geo, k)} (the encoder's: {feats[k]})"
             for k in ("sample_rate", "n_fft", "hop_length", "n_mels") if int(getattr(geo, k)) != int(feats[k])]
    if wrong:
        raise ConfigError(f"net.pretrained: {encoder} was trained on other log-mel settings: {'; '.join(wrong)}. "
                          f"Set them to the encoder's (e.g. --set features.hop_length={feats['hop_length']}).")
    for k in _ENCODER_ARCH_KEYS:
        if k in kwargs:
            ours = [list(x) for x in kwargs[k]] if k == "setting" else kwargs[k]
            if ours != arch[k]:
                raise ConfigError(f"net.{k}: {kwargs[k]!r} differs from {encoder}'s {arch[k]!r}; remove net.{k} "
                                  f"(net.pretrained fixes the architecture)")
    net = build_for_clip(name, geo, **{**{k: v for k, v in kwargs.items() if k not in _ENCODER_ARCH_KEYS},
                                       **{k: arch[k] for k in _ENCODER_ARCH_KEYS}})
    with np.load(js.with_suffix(".npz"), allow_pickle=False) as z:
        state = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float32 if z[k].dtype.kind == "f" else z[k].dtype))
                 for k in z.files}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ConfigError(f"net.pretrained: {encoder} does not fit this net (missing {missing[:4]})")
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    skipped = sorted(set(own) - set(fits))
    net.load_state_dict({**own, **fits})
    if skipped:
        log.info("net.pretrained: %s loaded %d of %d tensors; kept fresh (shape depends on the clip): %s",
                 encoder, len(fits), len(own), ", ".join(skipped))
    net.pretrained_from = {"encoder": encoder, "loaded": len(fits), "kept_fresh": skipped}
    return net


# ------------------------------------------------------------------------------------------------
# EMA, model selection, batch-norm recalibration
# ------------------------------------------------------------------------------------------------
#: ``train:`` keys read by the methods rather than the engine
OWN_TRAIN_KEYS = ("ema",)


def split_own_train_keys(train: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(engine train section, own keys)``: ``ema`` is read by the method, the rest goes to the engine."""
    train = dict(train or {})
    own = {k: train.pop(k) for k in OWN_TRAIN_KEYS if k in train}
    return train, own


def parse_ema(ema: Any) -> Optional[dict[str, Any]]:
    """``train.ema`` as ``{decay, warmup, shrink}`` or ``None`` (``null``/``false`` = none, ``true`` =
    defaults, a number = the decay, or a mapping ``{decay, warmup, shrink}``; ``shrink`` multiplies the
    trained weights and batch-norm buffers by ``1 - shrink`` after every step, as the OS-SCL code's
    ``WeightEMA`` does with 2e-6; default 0)."""
    if ema is None or ema is False:
        return None
    if ema is True:
        ema = {}
    if isinstance(ema, (int, float)):
        ema = {"decay": float(ema)}
    if not isinstance(ema, Mapping):
        raise ConfigError(f"train.ema must be null, a decay or {{decay, warmup, shrink}}, got {ema!r}")
    bad = sorted(set(ema) - {"decay", "warmup", "shrink"})
    if bad:
        raise ConfigError(f"train.ema: unknown setting(s) {bad}; known: ['decay', 'shrink', 'warmup']")
    out = {"decay": float(ema.get("decay", 0.999)), "warmup": bool(ema.get("warmup", False)),
           "shrink": float(ema.get("shrink", 0.0))}
    if not 0.0 <= out["decay"] < 1.0:
        raise ConfigError(f"train.ema.decay must be in [0, 1), got {out['decay']}")
    if not 0.0 <= out["shrink"] < 1.0:
        raise ConfigError(f"train.ema.shrink must be in [0, 1), got {out['shrink']}")
    return out


def build_ema(model: Any, ema: Optional[Mapping[str, Any]]) -> Any:
    """A :class:`~auscult.engine.ModelEMA` from :func:`parse_ema`'s result (``None`` = no EMA)."""
    from ..engine.ema import ModelEMA

    if ema is None:
        return None
    return ModelEMA(model, decay=float(ema["decay"]), warmup=bool(ema["warmup"]),
                    shrink=float(ema.get("shrink", 0.0)))


class BestWeights:
    """Trainer callback: keep a copy of the weights (EMA weights when an EMA runs) of the best epoch."""

    def __init__(self) -> None:
        self.state: Optional[dict[str, Any]] = None
        self.epoch: Optional[int] = None

    def on_epoch_end(self, trainer: Any, record: Mapping[str, Any]) -> None:
        if trainer.best_epoch is not None and trainer.best_epoch == record.get("epoch"):
            src = trainer.ema.module if trainer.ema is not None and trainer.config.eval_with_ema else trainer.raw_model
            self.state = {k: v.detach().clone() for k, v in src.state_dict().items()}
            self.epoch = int(record["epoch"])


def restore_selected(model: Any, trainer: Any, best: BestWeights, run_dir: Any, use_ema: bool = True) -> str:
    """Put the selected weights into ``model``; returns which ones (for the history).

    Order: the run directory's ``best.pt`` (EMA weights if saved and ``use_ema``: survives resume),
    else the in-memory best epoch, else the final EMA weights, else the final weights.
    """
    from ..engine.trainer import load_trained_model

    path = None if run_dir is None else run_dir.checkpoints / "best.pt"
    if path is not None and path.exists():
        load_trained_model(model, path, use_ema=use_ema)
        return f"best.pt (epoch {trainer.best_epoch})" if trainer.best_epoch is not None else "best.pt"
    if best.state is not None:
        model.load_state_dict(best.state)
        return f"best epoch {best.epoch}"
    if trainer.ema is not None:
        model.load_state_dict(trainer.ema.module.state_dict())
        return "final EMA"
    return "final"


def recalibrate_batchnorm(model: Any, clips: Sequence[Clip], audio: Any, batch_size: int, device: Any,
                          inputs: Any = None) -> int:
    """Re-estimate every batch norm's running mean / variance as the plain average over one pass of
    the (un-augmented) training clips, weights unchanged; returns the number of layers reset.

    ``inputs(waveforms) -> model input`` prepares a batch (default: the waveforms themselves);
    batches of one clip are skipped (no variance). Short runs leave the running statistics (what
    eval mode uses) behind the weights, and mixup trains them on mixed inputs; this puts them on
    clean training clips, as test clips are.
    """
    import torch
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the batches
    was = model.training
    model.train()
    try:
        with torch.no_grad():
            for _, xb in audio.iter_batches(list(clips), max(2, int(batch_size))):
                if xb.shape[0] > 1:
                    xb = xb.to(device)
                    model(inputs(xb) if inputs is not None else xb)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.train(was)
    return len(bns)
