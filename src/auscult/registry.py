"""Name -> constructor registries (nets, losses, back-ends, methods, ...).

Each family module creates one ``Registry`` and decorates its entries::

    NETS = Registry("net")

    @NETS.register("mobilefacenet", defaults={"emb_dim": 128}, description="...")
    class MobileFaceNet(nn.Module): ...

    net = NETS.build("mobilefacenet", in_channels=1, input_shape=(128, 313))

Tests walk ``Registry.names()`` so that a new entry is tested the day it is added.

:func:`merge_section` is the one way a config section is merged into its defaults (recipes,
methods, back-ends): unknown keys are errors that name the section and list the known keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        defaults: dict[str, Any] | None = None,
        description: str = "",
        tags: tuple[str, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        key = name.lower()

        def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
            if key in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
            desc = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[key] = Entry(key, factory, dict(defaults or {}), desc, tuple(tags))
            return factory

        return deco

    def get(self, name: str) -> Entry:
        key = name.lower()
        if key not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._entries[key]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        entry = self.get(name)
        params = {**entry.defaults, **kwargs}
        return entry.factory(**params)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[k] for k in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def merge_section(defaults: Mapping[str, Any], given: Any, what: str, open_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The one config-section merge: ``defaults`` updated by ``given`` (a recipe section).

    Nested mappings are merged the same way (their errors name ``what.key``); a key of ``given``
    that ``defaults`` does not have raises :class:`ConfigError` listing the known ones. Sub-sections
    named in ``open_keys`` are merged without that check (their owner validates extra keys, e.g. a
    training section that also takes optimiser settings). ``given`` may be ``None`` (the defaults);
    anything but a mapping raises :class:`ConfigError`. The inputs are not modified.
    """
    import copy

    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(f"recipe key {what!r} must be a mapping, got {type(given).__name__}")
    out = copy.deepcopy(dict(defaults))
    given = dict(given or {})
    unknown = sorted(set(given) - set(out))
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {unknown}; known: {sorted(out)}")
    open_keys = set(open_keys)
    for k, v in given.items():
        if isinstance(out[k], dict) and (v is None or isinstance(v, Mapping)):
            if k in open_keys:
                out[k] = {**out[k], **copy.deepcopy(dict(v or {}))}
            else:
                out[k] = merge_section(out[k], v, f"{what}.{k}")
        else:
            out[k] = copy.deepcopy(v)
    return out
