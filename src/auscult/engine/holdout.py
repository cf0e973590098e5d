"""Held-out slice of the training normals for model selection and early stopping.

auscult never selects models on test clips: the validation signal the trainer monitors is
computed on a slice of the *training* normals that the model does not train on.
:func:`holdout_split` refuses items whose ``split`` is ``"test"`` so a test clip cannot slip in.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Callable, Hashable, Sequence, TypeVar

from ..errors import ConfigError, DataError

T = TypeVar("T")


def holdout_split(
    items: Sequence[T],
    fraction: float,
    seed: int = 0,
    key: Callable[[T], Hashable] | None = None,
) -> tuple[list[T], list[T]]:
    """Split training items into ``(train, holdout)``; deterministic given ``seed``.

    ``fraction`` of the items (rounded, at least one) go to the hold-out. With ``key`` (e.g.
    ``lambda c: (c.machine, c.section, c.domain)``) the split is stratified: each group gives its
    own rounded share, so small groups such as the few target-domain clips are represented on both
    sides when they have at least two items. Input order is kept inside each side.

    Raises :class:`DataError` if any item is a test clip (an object with ``split == "test"``) or
    if either side would be empty; :class:`ConfigError` if ``fraction`` is not in (0, 1).
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"hold-out fraction must be in (0, 1), got {fraction}")
    test = [it for it in items if getattr(it, "split", None) == "test"]
    if test:
        name = getattr(test[0], "path", test[0])
        raise DataError(
            f"{name}: hold-out split got {len(test)} test clip(s); model selection uses training "
            f"normals only - pass the training clips (split='train')"
        )
    n = len(items)
    if n < 2:
        raise DataError(f"hold-out split needs at least 2 training items, got {n}")
    rng = random.Random(seed)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[key(it) if key else None].append(i)
    held: set[int] = set()
    for g in sorted(groups, key=repr):
        idx = groups[g]
        k = int(math.floor(fraction * len(idx) + 0.5))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.update(rng.sample(idx, k))
    if not held:  # only singleton groups: take the share over all items
        k = min(max(int(math.floor(fraction * n + 0.5)), 1), n - 1)
        held.update(rng.sample(range(n), k))
    train = [it for i, it in enumerate(items) if i not in held]
    hold = [it for i, it in enumerate(items) if i in held]
    if not train or not hold:  # pragma: no cover - guarded above
        raise DataError(f"hold-out split of {n} items left one side empty")
    return train, hold


