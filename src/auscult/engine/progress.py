"""Progress bars for long work: rich bars on a terminal, silent otherwise.

``progress_enabled()`` is False when stderr is not a TTY (CI, logs, pipes), when
``AUSCULT_QUIET=1`` is set, or when the caller passes ``quiet=True``.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_enabled(quiet: bool | None = None) -> bool:
    if quiet:
        return False
    if os.environ.get("AUSCULT_QUIET", "").lower() in ("1", "true", "yes"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Null:
    """Stand-in with the same methods as :class:`Bar` that does nothing."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass

    def reset(self, total: int | None = None, description: str | None = None) -> None:
        pass


class Bar:
    """One task of a rich ``Progress`` display."""

    def __init__(self, progress: Any, task: Any):
        self._p = progress
        self._t = task

    def advance(self, n: int = 1, **fields: Any) -> None:
        self._p.update(self._t, advance=n)
        if fields:
            self._p.update(self._t, info=_fmt(fields))

    def update(self, **fields: Any) -> None:
        self._p.update(self._t, info=_fmt(fields))

    def reset(self, total: int | None = None, description: str | None = None) -> None:
        kw: dict[str, Any] = {"total": total}
        if description is not None:
            kw["description"] = description
        self._p.reset(self._t, **kw)


def _fmt(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


@contextmanager
def progress_bar(total: int | None, description: str = "", quiet: bool | None = None) -> Iterator[Bar | _Null]:
    """Context manager yielding a bar with ``advance(n, **fields)`` / ``update(**fields)`` / ``reset()``."""
    if not progress_enabled(quiet):
        yield _Null()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        transient=False,
    ) as p:
        task = p.add_task(description, total=total, info="")
        yield Bar(p, task)


def track(iterable: Iterable[T], total: int | None = None, description: str = "", quiet: bool | None = None) -> Iterator[T]:
    """Iterate with a progress bar (plain iteration when progress is disabled)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with progress_bar(total, description, quiet) as bar:
        for item in iterable:
            yield item
            bar.advance()
