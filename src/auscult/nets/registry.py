"""The net registry and the mapping from a clip geometry to each net's input arguments.

Every entry is registered with ``register_net(name, inputs=..., defaults=...)`` where ``inputs``
turns a :class:`~auscult.nets.layers.ClipGeometry` into the shape arguments of the
constructor. The registry defaults hold those arguments for a 10 s / 16 kHz / 128-mel clip,
so ``NETS.build(name)`` works for every entry, and :func:`build_for_clip` builds any entry
for another clip length or front-end.
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry
from .layers import ClipGeometry

NETS = Registry("net")

InputsFn = Callable[[ClipGeometry], dict[str, Any]]
_INPUTS: dict[str, InputsFn] = {}


def register_net(
    name: str,
    *,
    inputs: InputsFn,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a net whose shape arguments come from ``inputs(ClipGeometry)``."""
    shape_kw = inputs(ClipGeometry())
    deco = NETS.register(
        name, defaults={**shape_kw, **(defaults or {})}, description=description, tags=tags
    )
    _INPUTS[name.lower()] = inputs
    return deco


def input_kwargs(name: str, geometry: ClipGeometry | None = None, **geometry_kw: Any) -> dict[str, Any]:
    """The shape arguments of net ``name`` for a clip geometry (default: 10 s, 16 kHz, 128 mels).

    ``geometry_kw`` (``duration``, ``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels``)
    override fields of ``geometry``.
    """
    NETS.get(name)  # typed error for unknown names
    geo = geometry or ClipGeometry()
    if geometry_kw:
        geo = ClipGeometry(**{**geo.__dict__, **geometry_kw})
    return _INPUTS[name.lower()](geo)


def build_for_clip(name: str, geometry: ClipGeometry | None = None, /, **kwargs: Any) -> Any:
    """Build net ``name`` for a clip geometry; other keyword arguments go to the constructor.

    Example: ``build_for_clip("mobilefacenet", ClipGeometry(duration=12.0), activation="relu")``.
    """
    return NETS.build(name, **{**input_kwargs(name, geometry), **kwargs})
