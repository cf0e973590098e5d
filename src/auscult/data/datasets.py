"""torch ``Dataset``s over clips (waveforms through an :class:`~auscult.data.source.AudioSource`).

* :class:`ClipDataset` — item ``i`` is ``(waveform float32 [T], i)``; an optional ``targets``
  sequence adds a third element (class ids for classifier methods).
* :class:`FrameDataset` — any per-clip feature matrix flattened to rows (e.g. the AE's stacked
  log-mel frames), computed once and kept in memory.

Random crops: pass ``seed``; each item draws its crop offset from a generator seeded by
``(seed, epoch, index)``, so a run is reproducible and every epoch sees fresh crops
(call :meth:`ClipDataset.set_epoch`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .clip import Clip
from .source import AudioSource

__all__ = ["ClipDataset", "FrameDataset", "collate_waveforms"]


class ClipDataset:
    """Waveforms of ``clips``; a map-style dataset usable with ``torch.utils.data.DataLoader``."""

    def __init__(self, clips: Sequence[Clip], audio: AudioSource, targets: Optional[Sequence[int]] = None,
                 seed: Optional[int] = None):
        self.clips = list(clips)
        self.audio = audio
        if targets is not None and len(targets) != len(self.clips):
            from ..errors import ConfigError

            raise ConfigError(f"ClipDataset: {len(targets)} targets for {len(self.clips)} clips")
        self.targets = None if targets is None else [int(t) for t in targets]
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random-crop stream (only matters with ``offset='random'``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        import torch

        rng = None if self.seed is None else np.random.default_rng([int(self.seed), self.epoch, int(i)])
        x = torch.from_numpy(self.audio.load(self.clips[i], rng=rng))
        if self.targets is None:
            return x, i
        return x, self.targets[i], i


def collate_waveforms(items: Sequence[tuple]) -> tuple:
    """Stack equal-length waveforms; other fields become ``LongTensor`` s."""
    import torch

    cols = list(zip(*items))
    out = [torch.stack(list(cols[0]), 0)]
    out += [torch.as_tensor(c, dtype=torch.long) for c in cols[1:]]
    return tuple(out)


class FrameDataset:
    """Rows of per-clip feature matrices, e.g. ``[n_frames, 640]`` stacked log-mel vectors.

    Args:
        features: one 2-D array (or tensor) ``[n_rows_i, dim]`` per clip.
    Item ``j`` is ``(row float32 [dim], clip_index)``.
    """

    def __init__(self, features: Sequence[Any]):
        import torch

        mats = [torch.as_tensor(np.asarray(f), dtype=torch.float32) for f in features]
        if not mats:
            self.data = torch.zeros((0, 0))
            self.owner = torch.zeros((0,), dtype=torch.long)
            return
        self.data = torch.cat(mats, 0)
        self.owner = torch.cat([torch.full((m.shape[0],), i, dtype=torch.long) for i, m in enumerate(mats)])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, j: int):
        return self.data[j], self.owner[j]
