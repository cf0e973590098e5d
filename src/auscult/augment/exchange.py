"""Statistics exchange and feature exchange, with their label construction.

Statistics exchange (temporal variant): every frame ``t`` of sample ``i`` is standardised with its own
mean/std over frequency and given the partner's mean/std of the same frame::

    x~_i[:, t] = (x_i[:, t] - mu_i[t]) / sigma_i[t] * sigma_j[t] + mu_j[t],   j = perm[i]

Feature exchange works on embeddings made of separately addressable branches (e.g. a 256-d
dual-branch embedding = spectrum part ``[:128]`` + spectrogram part ``[128:]``): the exchanged sample
keeps its own first part and takes the partner's second part.

Labels (C classes, or any ``K``-column soft label) for a batch extended with its exchanged copies::

    original sample i:   [ y_i,  0,         0             ]    (3 blocks of K columns)
    exchanged sample i:  [ 0,    1/2 y_i,   1/2 y_perm[i] ]

Block 0 = "not exchanged", block 1 = the sample's own class, block 2 = the partner's class.
Composition: apply statistics exchange (K = C -> 3C labels), then feature exchange on the
resulting labels (K = 3C -> 9C). Column ``f * 3C + s * C + c`` then means feature-exchange block
``f``, statistics-exchange block ``s``, class ``c`` (``f, s`` in {0: original, 1: own, 2: partner}).
Partners are drawn as a random derangement (nobody is their own partner when ``B >= 2``).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def derangement(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation with no fixed point (for ``n >= 2``; ``[0]`` for ``n == 1``)."""
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = torch.roll(order, -1)
    return perm


def _as_label_matrix(y: torch.Tensor, n_classes: int | None) -> torch.Tensor:
    if y.dim() == 1 and not y.dtype.is_floating_point:
        if n_classes is None:
            raise ConfigError("hard labels need n_classes for the exchange label construction")
        return torch.nn.functional.one_hot(y.long(), n_classes).float()
    if y.dim() == 2:
        return y.float()
    raise ConfigError(f"labels must be hard [B] or soft [B, K], got shape {tuple(y.shape)}")


def exchange_labels(y: torch.Tensor, perm: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Labels ``[0, 1/2 y, 1/2 y_perm]`` (``[B, 3K]``) for exchanged samples."""
    yl = _as_label_matrix(y, n_classes)
    return torch.cat([torch.zeros_like(yl), 0.5 * yl, 0.5 * yl[perm.to(yl.device)]], dim=1)


def original_labels(y: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Labels ``[y, 0, 0]`` (``[B, 3K]``) for samples that were not exchanged."""
    yl = _as_label_matrix(y, n_classes)
    return torch.cat([yl, torch.zeros_like(yl), torch.zeros_like(yl)], dim=1)


def statistics_exchange(x: torch.Tensor, perm: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        freq_dim: int = -2, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal statistics exchange; returns ``(x_exchanged, perm)``.

    Args:
        x: ``[B, F, T]`` or ``[B, C, F, T]`` (frequency on ``freq_dim``; ``freq_dim=-1`` gives the
            frequency-wise variant, statistics over time per frequency bin).
        perm: partner of each sample (default: a random derangement).
    """
    if x.dim() < 3:
        raise ConfigError(f"statistics exchange needs [B, F, T] or [B, C, F, T], got {tuple(x.shape)}")
    if perm is None:
        perm = derangement(x.shape[0], generator)
    perm = perm.to(x.device)
    mu = x.mean(dim=freq_dim, keepdim=True)
    xc = x - mu  # two-pass variance: stable, and faster than var() over a strided axis on CPU
    sd = torch.sqrt((xc * xc).mean(dim=freq_dim, keepdim=True) + eps)
    return xc * (sd[perm] / sd) + mu[perm], perm


def feature_exchange(emb: torch.Tensor, split: int, perm: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``emb[:, :split]`` and take ``emb[perm, split:]`` from the partner; returns ``(emb_ex, perm)``."""
    if emb.dim() != 2 or not 0 < split < emb.shape[1]:
        raise ConfigError(f"feature exchange needs [B, D] embeddings and 0 < split < D; got {tuple(emb.shape)}, split={split}")
    if perm is None:
        perm = derangement(emb.shape[0], generator)
    perm = perm.to(emb.device)
    return torch.cat([emb[:, :split], emb[perm, split:]], dim=1), perm


def partner_of(n: int, kind: str = "derangement", generator: torch.Generator | None = None) -> torch.Tensor:
    """Partners for a batch of ``n``: ``"derangement"`` (random, nobody their own partner),
    ``"permutation"`` (random, fixed points allowed: the DCASE ASD toolkit) or ``"reverse"`` (sample
    ``i`` pairs with ``n - 1 - i``: the SSL4ASD code, random pairs once the loader shuffles)."""
    if kind == "derangement":
        return derangement(n, generator)
    if kind == "permutation":
        return torch.randperm(n, generator=generator)
    if kind == "reverse":
        return torch.arange(n - 1, -1, -1)
    raise ConfigError(f"partner must be one of {PARTNERS}, got {kind!r}")


#: how exchange / mixup partners are drawn (:func:`partner_of`)
PARTNERS = ("derangement", "permutation", "reverse")


def _combine(x: torch.Tensor, x_ex: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, n_classes: int | None,
             p: float, append: bool, generator: torch.Generator | None,
             swap: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    orig, ex = original_labels(y, n_classes).to(x.device), exchange_labels(y, perm, n_classes).to(x.device)
    if append:
        return torch.cat([x, x_ex]), torch.cat([orig, ex])
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"exchange probability must be in [0, 1], got {p}")
    if swap is None:
        swap = torch.rand(x.shape[0], generator=generator) < p
    elif tuple(swap.shape) != (x.shape[0],):
        raise ConfigError(f"swap must be a [B] mask, got shape {tuple(swap.shape)} for {x.shape[0]} samples")
    swap = swap.to(torch.bool).to(x.device)
    sx = swap.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(sx, x_ex, x), torch.where(swap[:, None], ex, orig)


def with_statistics_exchange(x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, p: float = 0.5,
                             append: bool = False, generator: torch.Generator | None = None,
                             perm: torch.Tensor | None = None, swap: torch.Tensor | None = None,
                             **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Statistics exchange with labels ``[B, 3K]``.

    Default (as published): each sample is replaced by its exchanged version with probability ``p``
    and labelled accordingly. ``append=True`` instead returns the batch followed by all its exchanged
    copies (``2B`` rows). ``perm`` (partners) and ``swap`` (``[B]`` mask of the samples to replace)
    replace the random draws. ``kw`` goes to :func:`statistics_exchange` (``freq_dim``, ``eps``).
    """
    xe, perm = statistics_exchange(x, perm=perm, generator=generator, **kw)
    return _combine(x, xe, y, perm, n_classes, p, append, generator, swap)


def with_feature_exchange(emb: torch.Tensor, y: torch.Tensor, split: int, n_classes: int | None = None,
                          p: float = 0.5, append: bool = False, generator: torch.Generator | None = None,
                          perm: torch.Tensor | None = None,
                          swap: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature exchange with labels ``[B, 3K]`` (``2B`` rows with ``append=True``); see
    :func:`with_statistics_exchange` for ``p``, ``append``, ``perm`` and ``swap``."""
    ee, perm = feature_exchange(emb, split, perm=perm, generator=generator)
    return _combine(emb, ee, y, perm, n_classes, p, append, generator, swap)
