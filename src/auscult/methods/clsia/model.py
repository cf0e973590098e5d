"""CLSIA's building blocks: augmented views, MoCo encoders, the labelled key queue, the loss and
the training step (shared by :mod:`.method` and the pre-training in :mod:`.pretrain`).

Views (training only; :class:`CLSIAViews`): each clip's log-mel is pre-normalised with statistics
of the training set, mixed with a random past input by log-mixup-exp against a FIFO memory bank
(``lam ~ U(0, alpha)``, ``alpha = 0.4``), randomly resized-cropped and post-normalised (per batch).
Two independent views of a clip differ most in the detail the mix and the frequency stretch
change: fine high-frequency structure.

Contrast (:class:`MoCo`, :func:`contrastive_loss`): the query encoder (net + projection MLP) is
trained by back-propagation on view 1; the key encoder is a copy that never receives gradients and
follows ``theta_k <- m theta_k + (1 - m) theta_q`` on view 2. Keys carry a label and go into a FIFO
queue (labels alongside, :class:`LabelledKeyQueue`); every key of the anchor's label is a positive.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...augment import MemoryBank, PreNorm, log_mixup_exp, post_norm, random_resized_crop
from ...data.clip import Clip
from ...errors import ConfigError
from ...losses import InfoNCEMoCo, momentum_update

__all__ = ["AUGMENT_DEFAULTS", "CLSIAViews", "MoCo", "LabelledKeyQueue", "contrastive_loss", "moco_step",
           "AnchorNegativeDataset", "collate_views", "Classifier"]

#: defaults of the recipe's ``augment:`` section
AUGMENT_DEFAULTS: dict[str, Any] = {
    "logmixupexp": {"alpha": 0.4, "bank_size": 2048},
    "rrc": {"freq_scale": [0.6, 1.5], "time_scale": [0.6, 1.5], "canvas_scale": [1.0, 1.5]},
}

# ---------------------------------------------------------------------------------------------
# views
class CLSIAViews(nn.Module):
    """Pre-norm -> log-mixup-exp against a FIFO bank -> random resized crop -> post-norm.

    ``normalize(x)`` applies the pre-normalisation only (what the encoder sees at scoring time);
    ``views(x, n)`` returns ``n`` independent augmented views of a pre-normalised batch and then
    pushes the (un-mixed) batch into the bank. Randomness comes from torch's global generator
    (checkpointed by the trainer) unless a ``generator`` is given.
    """

    def __init__(self, alpha: float = 0.4, bank_size: int = 2048, freq_scale=(0.6, 1.5),
                 time_scale=(0.6, 1.5), canvas_scale=(1.0, 1.5), warmup_batches: int = 0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"augment.logmixupexp.alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.freq_scale, self.time_scale, self.canvas_scale = tuple(freq_scale), tuple(time_scale), tuple(canvas_scale)
        self.prenorm = PreNorm(warmup_batches=warmup_batches)
        self.bank = MemoryBank(bank_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.prenorm(x)

    def view(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One augmented view of a pre-normalised ``[B, F, T]`` batch (the bank is not changed)."""
        b = x.shape[0]
        y = x
        if len(self.bank) > 0 and self.alpha > 0:
            other = self.bank.sample(b, generator).to(x)
            lam = torch.rand(b, generator=generator) * self.alpha
            y = log_mixup_exp(x, other, lam.to(x.device))
        y = random_resized_crop(y, self.freq_scale, self.time_scale, self.canvas_scale, 0.0, generator)
        return post_norm(y)

    def views(self, x: torch.Tensor, n: int = 2, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        out = [self.view(x, generator) for _ in range(n)]
        self.bank.push(x)
        return out


# ---------------------------------------------------------------------------------------------
# MoCo
class MoCo(nn.Module):
    """Query encoder (net + projection) trained by back-prop; key encoder updated by momentum.

    The key encoder's parameters have ``requires_grad=False`` and are only changed by
    :meth:`momentum_update` (``theta_k <- m theta_k + (1 - m) theta_q``; buffers copied).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, momentum: float = 0.99):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"clsia.momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.encoder, self.head = encoder, head
        self.key_encoder, self.key_head = copy.deepcopy(encoder), copy.deepcopy(head)
        for p in list(self.key_encoder.parameters()) + list(self.key_head.parameters()):
            p.requires_grad_(False)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        return self.key_head(self.key_encoder(x))

    @torch.no_grad()
    def momentum_update(self) -> None:
        momentum_update(self.key_encoder, self.encoder, self.momentum)
        momentum_update(self.key_head, self.head, self.momentum)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class LabelledKeyQueue(nn.Module):
    """A MoCo FIFO queue of keys (:class:`~auscult.losses.InfoNCEMoCo`'s buffer) with a label per key.

    The queue starts with random unit keys labelled ``-1`` (negatives for everyone). ``enqueue``
    overwrites the oldest entries; ``keys``/``labels`` are in slot order.
    """

    def __init__(self, emb_dim: int, size: int = 4096, temperature: float = 0.07, seed: int | None = None):
        super().__init__()
        self.infonce = InfoNCEMoCo(emb_dim=emb_dim, queue_size=size, temperature=temperature, seed=seed)
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))

    @property
    def keys(self) -> torch.Tensor:
        return self.infonce.queue

    @property
    def temperature(self) -> float:
        return self.infonce.temperature

    @property
    def ptr(self) -> int:
        return int(self.infonce.ptr)

    def __len__(self) -> int:
        return int(self.infonce.queue.shape[0])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        size = len(self)
        if keys.shape[0] != labels.shape[0]:
            raise ConfigError(f"{keys.shape[0]} keys but {labels.shape[0]} labels")
        if keys.shape[0] > size:
            keys, labels = keys[-size:], labels[-size:]
        idx = (self.ptr + torch.arange(keys.shape[0], device=self.labels.device)) % size
        self.labels[idx] = labels.to(self.labels)
        self.infonce.enqueue(keys)


def contrastive_loss(q: torch.Tensor, q_labels: torch.Tensor, keys: torch.Tensor, key_labels: torch.Tensor,
                     queue: LabelledKeyQueue, own: Optional[torch.Tensor] = None) -> torch.Tensor:
    """InfoNCE over ``[batch keys, queue]`` with every same-label key a positive.

    For query ``i``, positives ``P(i)`` are the keys labelled ``q_labels[i]`` (batch and queue) plus
    ``own[i]`` (the column of the query's own positive key, always counted); negatives ``N(i)`` are
    all other keys. Each positive forms one InfoNCE term against the negatives::

        L_i = mean_{p in P(i)} -log( exp(s_ip) / (exp(s_ip) + sum_{n in N(i)} exp(s_in)) ),
        s_ij = q_i . k_j / tau   (q, k L2-normalised; keys are constants)

    so the loss is 0 at best whatever the number of positives (a queue filling up with same-section
    keys does not raise its floor). With a single positive it is MoCo's InfoNCE exactly.
    """
    qn = F.normalize(q, dim=1)
    cols = torch.cat([F.normalize(keys.detach(), dim=1), queue.keys.clone().detach().to(qn)], 0)
    col_labels = torch.cat([key_labels.to(queue.labels.device), queue.labels.clone()], 0).to(qn.device)
    logits = qn @ cols.T / queue.temperature
    pos = q_labels[:, None].to(qn.device) == col_labels[None, :]
    if own is not None:
        pos[torch.arange(qn.shape[0], device=qn.device), own.to(qn.device)] = True
    if not bool(pos.any(1).all()):
        raise ConfigError("contrastive loss: a query has no positive key (pass own= or same-label keys)")
    neg_lse = torch.logsumexp(logits.masked_fill(pos, float("-inf")), dim=1, keepdim=True)  # -inf: no negatives
    terms = torch.logaddexp(logits, neg_lse) - logits  # -log(e^s / (e^s + sum_neg e^n))
    posf = pos.to(qn.dtype)
    return ((terms * posf).sum(1) / posf.sum(1)).mean()


def moco_step(model: MoCo, views: CLSIAViews, queue: LabelledKeyQueue, frontend: nn.Module,
              batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """One CLSIA training step's forward: returns the loss (the caller back-propagates it).

    ``batch`` is ``(anchors [B, T], anchor labels [B], index)`` or ``(anchors, negatives [B, T],
    anchor labels, negative labels, index)``. Order: log-mel -> pre-norm -> two views of the
    anchors (then the bank takes the anchors) -> momentum update of the key encoder -> keys of
    view 2 (and of one view of each negative clip) -> queries of view 1 -> loss against the batch's
    keys and the queue -> the batch's keys enter the queue.
    """
    if len(batch) == 5:
        xa, xn, ya, yn, _ = batch
    else:
        (xa, ya, _), xn, yn = batch, None, None
    with torch.no_grad():
        v1, v2 = views.views(views.normalize(frontend(xa)), 2)
        model.momentum_update()
        keys, key_labels = model.key(v2.unsqueeze(1)), ya
        if xn is not None:
            kn = model.key(views.view(views.normalize(frontend(xn))).unsqueeze(1))
            keys, key_labels = torch.cat([keys, kn]), torch.cat([ya, yn])
    q = model.query(v1.unsqueeze(1))
    own = torch.arange(q.shape[0], device=q.device)
    loss = contrastive_loss(q, ya, keys, key_labels, queue, own=own)
    queue.enqueue(keys, key_labels)
    return loss


# ---------------------------------------------------------------------------------------------
# data
class AnchorNegativeDataset:
    """Item ``i``: ``(anchor waveform, negative waveform, anchor label, negative label, i)``.

    The negative clip of item ``i`` is drawn from ``negatives`` by a generator seeded with
    ``(seed, epoch, i)`` (reproducible, fresh every epoch). Without negatives an item is
    ``(anchor waveform, anchor label, i)``.
    """

    def __init__(self, anchors: Sequence[Clip], labels: Sequence[int], audio: Any,
                 negatives: Sequence[Clip] = (), negative_labels: Sequence[int] = (), seed: int = 0):
        self.anchors, self.labels = list(anchors), [int(v) for v in labels]
        self.negatives, self.negative_labels = list(negatives), [int(v) for v in negative_labels]
        self.audio, self.seed, self.epoch = audio, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, i: int):
        xa = torch.from_numpy(self.audio.load(self.anchors[i]))
        if not self.negatives:
            return xa, self.labels[i], i
        j = int(np.random.default_rng([self.seed, self.epoch, int(i)]).integers(len(self.negatives)))
        xn = torch.from_numpy(self.audio.load(self.negatives[j]))
        return xa, xn, self.labels[i], self.negative_labels[j], i


def collate_views(items):
    """Collate :class:`AnchorNegativeDataset` items: waveforms stacked, labels and indices as tensors."""
    cols = list(zip(*items))
    n_wave = 2 if len(cols) == 5 else 1
    return tuple([torch.stack(list(c), 0) for c in cols[:n_wave]]
                 + [torch.as_tensor(c, dtype=torch.long) for c in cols[n_wave:]])


# ---------------------------------------------------------------------------------------------
class Classifier(nn.Module):
    """Encoder + margin head for the fine-tuning stage."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


