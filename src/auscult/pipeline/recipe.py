"""Recipes: one YAML file per dataset and method, ``recipes/<dataset>/<method>.yaml``.

A recipe is a mapping with the same top-level keys for every method, plus the method's own
sections. The common keys (:class:`Recipe`)::

    method: autoencoder          # a name in auscult.methods.METHODS (required)
    name, description: ...       # free text
    year: 2023                   # DCASE year (submission names, protocol); null = from the clips
    model_per: machine           # all | machine | section: one model per ...
    seed: 0
    audio: {sample_rate: 16000, channel: auto, length: keep}    # auscult.audio.AudioConfig
    features: {n_fft: 1024, hop_length: 512, n_mels: 128, ...} # the front-end (FeatureConfig + method keys)
    data: {machines: null, sections: null, holdout: 0.1, include_supplemental: false}
    threshold: {method: gamma, quantile: 0.9, on: train}        # auscult.eval.thresholds.fit_threshold
    backend: {name: knn, k: 1, ...}                             # a registered back-end, when the method uses one
    reference: {...}             # the paper's reported numbers (free form, not read)

and the sections the method registered as its defaults (``METHODS.register(name, defaults=...)``:
``model``/``train``/``score`` for the autoencoder, ``clsia``, ``protoasd``, ``ensemble``, ``net``,
``loss``, ``augment``...). Unknown keys of those sections are refused from the registered defaults
without building the method; ``build=True`` (the default) also builds it once, so values are
checked now rather than an hour into a run.

Use::

    from auscult.pipeline.recipe import Recipe, load_recipe
    cfg = load_recipe("dcase2023/autoencoder", overrides=["train.epochs=5", "score.kind=mahalanobis"])
    recipe = Recipe.from_dict(cfg)       # typed: recipe.audio, recipe.threshold, recipe.sections["model"]

``--set`` values are parsed as YAML (``5`` is an int, ``0.1`` a float, ``null`` None, ``[a, b]`` a
list, ``true`` a bool). Every problem raises :class:`~auscult.errors.ConfigError` naming the key
(and the file).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from ..errors import ConfigError
from ..registry import merge_section

__all__ = ["Recipe", "recipes_dir", "list_recipes", "find_recipe", "load_recipe", "apply_overrides", "parse_override",
           "validate_recipe", "TOP_LEVEL_KEYS", "MODEL_PER", "DATA_KEYS", "THRESHOLD_KEYS"]

MODEL_PER = ("all", "machine", "section")
# keys every recipe may have at top level; a method adds the sections it registered defaults for
TOP_LEVEL_KEYS = frozenset({
    "name", "description", "method", "year", "model_per", "seed", "audio", "features", "data", "threshold",
    "backend", "reference", "notes",
})
DATA_KEYS = {"machines": None, "sections": None, "holdout": 0.1, "include_supplemental": False}
THRESHOLD_KEYS = {"method": "gamma", "quantile": 0.9, "percentile": 90.0, "rate": 0.01, "on": "train"}


@dataclass
class Recipe:
    """A resolved recipe, typed: the common sections as fields, the method's own in ``sections``.

    Build it from a validated mapping (:func:`load_recipe`) with :meth:`from_dict`; :meth:`to_dict`
    gives the flat mapping back (what ``config.yaml`` holds and what a method is built with).
    """

    method: str
    audio: dict[str, Any]
    data: dict[str, Any]
    threshold: dict[str, Any]
    features: dict[str, Any] = field(default_factory=dict)
    backend: Optional[dict[str, Any]] = None
    sections: dict[str, Any] = field(default_factory=dict)
    name: Optional[str] = None
    description: str = ""
    year: Optional[int] = None
    model_per: str = "machine"
    seed: int = 0
    reference: Any = None
    notes: Any = None

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "Recipe":
        """A :class:`Recipe` of a resolved mapping (run it through :func:`validate_recipe` first)."""
        common = {k: cfg[k] for k in TOP_LEVEL_KEYS if k in cfg}
        own = {k: v for k, v in cfg.items() if k not in TOP_LEVEL_KEYS}
        return cls(**{**common, "features": dict(common.get("features") or {}),
                      "description": str(common.get("description") or "")}, sections=own)

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping (common keys first, then the method's sections)."""
        out: dict[str, Any] = {"method": self.method}
        for k in ("name", "description", "year", "model_per", "seed", "audio", "features", "data", "threshold",
                  "backend", "reference", "notes"):
            v = getattr(self, k)
            if v is not None or k in ("year", "backend", "reference"):
                out[k] = copy.deepcopy(v)
        out.update(copy.deepcopy(self.sections))
        return out


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-4`` / ``5E3`` as floats (YAML 1.1 wants ``1.0e-4``)."""
    import re

    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def recipes_dir() -> Path:
    """Where named recipes live: ``$AUSCULT_RECIPES``, else ``recipes/`` of the source checkout."""
    env = os.environ.get("AUSCULT_RECIPES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "recipes"


def list_recipes() -> list[dict[str, str]]:
    """Every named recipe: ``[{"name": "dcase2023/autoencoder", "method": ..., "description": ..., "path": ...}]``."""
    import yaml

    root = recipes_dir()
    out = []
    if not root.is_dir():
        return out
    for p in sorted(root.glob("*/*.yaml")):
        try:
            d = _yaml_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            d = {}
        d = d if isinstance(d, dict) else {}
        out.append({"name": f"{p.parent.name}/{p.stem}", "method": str(d.get("method", "?")),
                    "description": str(d.get("description", "")).strip().splitlines()[0] if d.get("description") else "",
                    "path": str(p)})
    return out


def find_recipe(name_or_path: Union[str, Path]) -> Path:
    """Resolve a recipe argument: an existing ``.yaml`` path, or a ``<dataset>/<method>`` name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"{p}: recipe file not found")
        return p
    if p.is_file():
        return p
    cand = recipes_dir() / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    known = ", ".join(r["name"] for r in list_recipes()) or "(none found)"
    raise ConfigError(f"unknown recipe {str(name_or_path)!r}: not a file and not a name under {recipes_dir()} "
                      f"(known: {known}); pass a path to a .yaml file or a <dataset>/<method> name")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> ``(["a", "b"], yaml_value)``."""
    import yaml

    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: bad key {key!r} (dotted path such as train.epochs)")
    try:
        value = _yaml_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    return parts, value


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``config`` with each ``key.path=value`` override applied."""
    cfg = copy.deepcopy(dict(config))
    for text in overrides or ():
        parts, value = parse_override(text)
        node: dict = cfg
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {'.'.join(parts)}: {'.'.join(parts[:i + 1])} is a "
                                  f"{type(nxt).__name__} ({nxt!r}), not a section")
            node = nxt
        node[parts[-1]] = value
    return cfg


def _check_type(key: str, value: Any, kinds: tuple, what: str, where: str) -> None:
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{where}{key} must be {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise ConfigError(f"{where}{key} must be {what}, got {value!r}")


def validate_recipe(config: Mapping[str, Any], source: Optional[str] = None, build: bool = True) -> dict[str, Any]:
    """Check a recipe and fill the pipeline defaults; returns the resolved copy.

    The method's own sections are checked against its registered defaults without building it;
    ``build=True`` also builds the method once (without training) so that their values are checked
    now rather than an hour into a run.
    """
    where = f"{source}: " if source else ""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}a recipe must be a mapping of keys, got {type(config).__name__}")
    cfg = copy.deepcopy(dict(config))
    if "method" not in cfg:
        raise ConfigError(f"{where}recipe has no 'method' key (e.g. method: autoencoder)")
    from ..eval.thresholds import THRESHOLD_METHODS
    from ..methods import METHODS

    entry = METHODS.get(str(cfg["method"]))  # ConfigError listing the known methods
    allowed = TOP_LEVEL_KEYS | set(METHODS.sections(entry.name))
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"{where}unknown recipe key(s) {unknown}; known: {sorted(allowed)}")
    cfg.setdefault("model_per", "machine")
    if cfg["model_per"] not in MODEL_PER:
        raise ConfigError(f"{where}model_per must be one of {MODEL_PER}, got {cfg['model_per']!r}")
    cfg.setdefault("seed", 0)
    _check_type("seed", cfg["seed"], (int,), "an integer", where)
    cfg.setdefault("year", None)
    if cfg["year"] is not None:
        _check_type("year", cfg["year"], (int,), "an integer 2020-2026 or null", where)
        if not 2020 <= cfg["year"] <= 2026:
            raise ConfigError(f"{where}year must be 2020-2026 or null, got {cfg['year']}")
    from ..audio import AudioConfig

    audio = cfg.get("audio") or {}
    if not isinstance(audio, dict):
        raise ConfigError(f"{where}audio must be a mapping, got {audio!r}")
    try:
        cfg["audio"] = AudioConfig.from_dict(audio).to_dict()
    except ConfigError as exc:
        raise ConfigError(f"{where}audio: {exc}") from None
    for sec, defaults in (("data", DATA_KEYS), ("threshold", THRESHOLD_KEYS)):
        given = cfg.get(sec)
        if given is not None and not isinstance(given, dict):
            raise ConfigError(f"{where}{sec} must be a mapping, got {given!r}")
        try:
            cfg[sec] = merge_section(defaults, given, sec)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
    h = cfg["data"]["holdout"]
    if h is not None and (isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 <= h < 1):
        raise ConfigError(f"{where}data.holdout must be a fraction in [0, 1) (0 or null: no hold-out), got {h!r}")
    for k in ("machines", "sections"):
        v = cfg["data"][k]
        if v is not None:
            if isinstance(v, (str, int)):
                v = [v]
            if not isinstance(v, list):
                raise ConfigError(f"{where}data.{k} must be a list or null, got {v!r}")
            cfg["data"][k] = [f"{int(s):02d}" if k == "sections" and str(s).isdigit() else str(s) for s in v]
    t = cfg["threshold"]
    if t["method"] not in THRESHOLD_METHODS:
        raise ConfigError(f"{where}threshold.method must be one of {THRESHOLD_METHODS}, got {t['method']!r}")
    if t["on"] not in ("train", "holdout"):
        raise ConfigError(f"{where}threshold.on must be 'train' (all training normals) or 'holdout', got {t['on']!r}")
    q = t["quantile"]
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
        raise ConfigError(f"{where}threshold.quantile must be in (0, 1), got {q!r}")
    r = t["rate"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
        raise ConfigError(f"{where}threshold.rate must be in (0, 1), got {r!r}")
    for sec in ("features", "backend"):
        if sec in cfg and cfg[sec] is not None and not isinstance(cfg[sec], dict):
            raise ConfigError(f"{where}{sec} must be a mapping, got {cfg[sec]!r}")
    backend = cfg.get("backend")
    if isinstance(backend, dict) and backend.get("name") is not None:
        from ..backends import BACKENDS

        try:
            BACKENDS.get(str(backend["name"]))
        except ConfigError as exc:
            raise ConfigError(f"{where}backend.name: {exc}") from None
    METHODS.check_sections(entry.name, cfg, where)  # the method's own sections, from its registered defaults
    if build:
        try:
            entry.factory(config=cfg)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        except TypeError as exc:  # a method whose constructor rejects the config shape
            raise ConfigError(f"{where}method {cfg['method']!r} rejected the recipe: {exc}") from None
    return cfg


def load_recipe(name_or_path: Union[str, Path, Mapping[str, Any]], overrides: Iterable[str] = (),
                build: bool = True) -> dict[str, Any]:
    """Load (by path or ``<dataset>/<method>`` name), apply ``key=value`` overrides, validate.

    A mapping may be passed instead of a name (then only overrides and validation apply).
    The resolved recipe gets ``name`` (the recipe name) when it has none.
    """
    import yaml

    if isinstance(name_or_path, Mapping):
        raw, source, name = dict(name_or_path), "recipe", None
    else:
        path = find_recipe(name_or_path)
        source = str(path)
        try:
            raw = _yaml_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if raw is None:
            raise ConfigError(f"{path}: the recipe is empty")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of keys, got {type(raw).__name__}")
        name = f"{path.parent.name}/{path.stem}"
    cfg = apply_overrides(raw, overrides)
    if name is not None:
        cfg.setdefault("name", name)
    return validate_recipe(cfg, source=source, build=build)
