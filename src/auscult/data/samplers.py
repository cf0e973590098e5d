"""Balanced batch sampler: N attribute classes x K clips per batch, oversampling the target domain.

Use it as a ``batch_sampler`` of a ``torch.utils.data.DataLoader``. Each batch holds ``n_classes``
distinct classes with ``n_per_class`` clips each. Classes are visited in shuffled rounds so every class
appears equally often (visit counts differ by at most one). Within a class, clips are drawn from a shuffled pool without
replacement, refilled when exhausted (small classes repeat; pair it with a random crop so repeats
differ). With ``target_fraction`` set, each draw from a class that has both domains comes from the
target domain with that probability, which oversamples the (rare) target clips.

Deterministic for a given ``seed`` and epoch (``set_epoch``).
"""

from __future__ import annotations

from typing import Hashable, Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import ConfigError
from .clip import Clip


class BalancedBatchSampler(Sampler[list[int]]):
    """Yield batches of ``n_classes * n_per_class`` dataset indices.

    Args:
        labels: class of each dataset item (any hashable; e.g. ``clip.attribute_key``).
        n_classes: N classes per batch (<= number of distinct classes).
        n_per_class: K clips per class.
        domains: optional domain of each item (``"source"``/``"target"``/``None``).
        target_fraction: probability that a draw from a class with both domains is a target clip
            (``None``: sample clips uniformly, ignoring domains).
        n_batches: batches per epoch (default: ``len(labels) // (N * K)``, at least 1).
        seed: base seed; the epoch is added (``set_epoch``).
    """

    def __init__(self, labels: Sequence[Hashable], n_classes: int, n_per_class: int,
                 domains: Optional[Sequence[Optional[str]]] = None, target_fraction: Optional[float] = None,
                 n_batches: Optional[int] = None, seed: int = 0):
        if len(labels) == 0:
            raise ConfigError("balanced sampler got no items; check the dataset selection")
        if domains is not None and len(domains) != len(labels):
            raise ConfigError(f"{len(labels)} labels but {len(domains)} domains")
        self.classes = sorted(set(labels), key=str)
        if not 1 <= n_classes <= len(self.classes):
            raise ConfigError(
                f"n_classes={n_classes} per batch but the data has {len(self.classes)} classes; "
                f"choose n_classes between 1 and {len(self.classes)}"
            )
        if n_per_class < 1:
            raise ConfigError(f"n_per_class must be >= 1, got {n_per_class}")
        if target_fraction is not None and not 0.0 <= target_fraction <= 1.0:
            raise ConfigError(f"target_fraction must be in [0, 1], got {target_fraction}")
        if target_fraction is not None and domains is None:
            raise ConfigError("target_fraction needs the domain of each item (pass domains=...)")
        self.n_classes, self.n_per_class, self.target_fraction = n_classes, n_per_class, target_fraction
        self.seed, self.epoch = int(seed), 0
        self.n_batches = n_batches if n_batches is not None else max(1, len(labels) // (n_classes * n_per_class))
        if self.n_batches < 1:
            raise ConfigError(f"n_batches must be >= 1, got {n_batches}")
        pos = {c: i for i, c in enumerate(self.classes)}
        # per class: pools of indices by domain group ("target" vs everything else)
        self._pools: list[dict[str, np.ndarray]] = [{} for _ in self.classes]
        for idx, lab in enumerate(labels):
            grp = "target" if (domains is not None and domains[idx] == "target") else "other"
            self._pools[pos[lab]].setdefault(grp, []).append(idx)  # type: ignore[arg-type]
        for p in self._pools:
            for k in list(p):
                p[k] = np.asarray(p[k], dtype=np.int64)
            p["all"] = np.sort(np.concatenate([p[k] for k in list(p)]))

    @classmethod
    def from_clips(cls, clips: Sequence[Clip], n_classes: int, n_per_class: int, key: str = "attribute_key",
                   **kw) -> "BalancedBatchSampler":
        """Build from ``Clip`` records, classes = ``(machine, section, getattr(clip, key))``."""
        labels = [(c.machine, c.section, getattr(c, key)) for c in clips]
        return cls(labels, n_classes, n_per_class, domains=[c.domain for c in clips], **kw)

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream (call once per epoch for different batches each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        state: dict[tuple[int, str], tuple[np.ndarray, int]] = {}

        def draw(ci: int, grp: str) -> int:
            order, k = state.get((ci, grp), (np.empty(0, np.int64), 0))
            if k >= order.size:
                order, k = rng.permutation(self._pools[ci][grp]), 0
            state[(ci, grp)] = (order, k + 1)
            return int(order[k])

        class_order: list[int] = []
        for _ in range(self.n_batches):
            if len(class_order) < self.n_classes:
                # next shuffled round (every class once); classes still queued from the previous
                # round go to its end, so a batch never holds a class twice
                rnd = rng.permutation(len(self.classes)).tolist()
                queued = set(class_order)
                class_order += [c for c in rnd if c not in queued] + [c for c in rnd if c in queued]
            chosen, class_order = class_order[: self.n_classes], class_order[self.n_classes:]
            batch: list[int] = []
            for ci in chosen:
                pools = self._pools[ci]
                for _ in range(self.n_per_class):
                    if self.target_fraction is None or "target" not in pools or "other" not in pools:
                        grp = "all"
                    else:
                        grp = "target" if rng.random() < self.target_fraction else "other"
                    batch.append(draw(ci, grp))
            yield batch
