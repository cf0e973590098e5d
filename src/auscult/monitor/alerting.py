"""The k-of-n alert rule, one implementation for ``auscult watch`` and the service's dashboard.

A clip or window above the threshold is *anomalous*; an *alert* is on while at least ``k`` of the
last ``n`` scored items are anomalous, so single false alarms (which happen at the threshold's
expected false-alarm rate) page nobody. An *alert episode* is one off -> on change.

Items that were not scored (a sensor/input fault, see issue 15 item 2) are passed as ``None``:
they neither enter the last-``n`` window nor change the state.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import ConfigError

__all__ = ["DEFAULT_K", "DEFAULT_N", "KOfN", "AlertTrack", "track_alerts", "check_k_of_n"]

#: alert while at least 3 of the last 5 items are anomalous (``auscult watch --k/--n``, ``serve --alert-k/-n``)
DEFAULT_K = 3
DEFAULT_N = 5


def check_k_of_n(k: int, n: int, where: str = "alert rule") -> None:
    """Raise ConfigError unless ``1 <= k <= n``."""
    if not (1 <= int(k) <= int(n)):
        raise ConfigError(f"{where}: need 1 <= k <= n for k-of-n alerts, got k={k}, n={n}")


class KOfN:
    """The rule's running state: feed decisions with :meth:`update`."""

    def __init__(self, k: int = DEFAULT_K, n: int = DEFAULT_N):
        check_k_of_n(k, n)
        self.k, self.n = int(k), int(n)
        self._recent: collections.deque = collections.deque(maxlen=self.n)
        self.state = False

    @property
    def positives(self) -> int:
        """Anomalous items among the last ``n``."""
        return int(sum(self._recent))

    @property
    def seen(self) -> int:
        """How many of the last ``n`` slots are filled (< n at the start)."""
        return len(self._recent)

    def update(self, decision: Optional[bool]) -> bool:
        """Add one item's decision (``None``: not scored, ignored); True when the alert state changed."""
        if decision is None:
            return False
        self._recent.append(bool(decision))
        new = self.positives >= self.k
        changed = new != self.state
        self.state = new
        return changed


@dataclass
class AlertTrack:
    """The rule applied to a sequence: the state after each item and the number of episodes."""

    states: list
    episodes: int
    state: bool  # after the last item


def track_alerts(decisions: Iterable[Optional[bool]], k: int = DEFAULT_K, n: int = DEFAULT_N) -> AlertTrack:
    """Apply :class:`KOfN` to ``decisions`` (oldest first)."""
    rule = KOfN(k, n)
    states, episodes = [], 0
    for d in decisions:
        if rule.update(d) and rule.state:
            episodes += 1
        states.append(rule.state)
    return AlertTrack(states, episodes, rule.state)
