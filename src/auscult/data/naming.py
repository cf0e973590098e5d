"""The DCASE Task 2 file-name grammar (2020–2026) and own-data folder layouts.

:func:`parse_path` turns one audio path into a :class:`~auscult.data.clip.Clip`, or raises
:class:`UnparsedNameError` with a ``reason`` that says which rule the path broke.

Layouts understood (``<machine>`` is always the folder above the split folder):

=====================  =====================================================================
``dcase2020``          ``<machine>/train/normal_id_II_NNNNNNNN.wav``,
                       ``<machine>/test/{normal|anomaly}_id_II_NNNNNNNN.wav``; the machine ID
                       plays the role of the section (``id_02`` -> section ``"02"``).
``dcase2020-eval``     ``<machine>/test/id_II_NNNNNNNN.wav`` (unlabelled until ground truth).
``dcase2021``          ``<machine>/{source_test|target_test}/section_SS_{source|target}_test_
                       {normal|anomaly}_NNNN.wav`` (no attributes), or the anonymised
                       ``section_SS_NNNN.wav`` in those folders; the domain comes from the folder.
                       Train names share the 2022+ grammar; the dataset index re-labels them 2021
                       when their machine folder holds ``source_test``/``target_test``.
``dcase2022``          ``section_SS_{source|target}_{train|test}_{normal|anomaly}_NNNN[_<k>_<v>…|
                       _noAttribute].wav`` (the grammar of 2022–2026; 2026 tails carry a noise
                       attribute, ``..._mic_1_noise_1``). The domain, split or label token may be
                       missing; the split then comes from the folder.
``dcase-anonymous``    eval test names ``section_SS_NNNN.wav`` (2022–2026): no domain, no label.
``dcase2025-supplemental``  anything ``section_SS_…`` under ``<machine>/supplemental/``: clean
                       machine or noise-only recordings, always normal, never test.
``mimii``              ``<machine>/id_II/{normal|abnormal}/NNNNNNNN.wav`` (the MIMII release).
``folder``             own data: ``<machine>/{normal|anomaly}/<anything>.wav`` (normal -> train,
                       anomaly -> test), or ``<machine>/{train|test}/{normal|anomaly}/…``.
=====================  =====================================================================

Year inference: the grammar fixes the year where it can (``id_`` names -> 2020,
``source_test``/``target_test`` folders -> 2021, ``supplemental/`` -> 2025). Otherwise a
folder between ``root`` (included) and the file named ``dcase2023…``, ``DCASE_2024…``,
``dcase2026t2`` or starting with the year (``2022``, ``2025_dev``) gives the year; failing that
the year stays ``None`` and ``layout`` says the grammar family (``dcase2022`` = the 2022–2026
grammar). An explicit ``year=`` wins over all. DCASE 2026 uses the 2022–2025 grammar and layout
with two-channel clips; a path alone cannot tell it apart, so the dataset index
(:meth:`~auscult.data.index.DatasetIndex.scan`) decides per machine folder from the channel
count in the file headers and :data:`DCASE2026_ONLY_MACHINE_TYPES`.

Attribute tails are kept verbatim in ``Clip.attributes_raw``; :func:`pair_attributes` pairs
them into a dict best-effort and never raises.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

from ..errors import DataError
from .clip import Clip

#: the one extension rule: files auscult reads as audio ...
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")
#: ... and extensions that look like audio but that auscult does not read (reported, never silently skipped)
UNSUPPORTED_AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au", ".wma", ".mp4", ".webm",
)

#: split folders of the DCASE layouts -> (split, domain implied by the folder)
SPLIT_FOLDERS: dict[str, tuple[str, Optional[str]]] = {
    "train": ("train", None),
    "test": ("test", None),
    "source_test": ("test", "source"),
    "target_test": ("test", "target"),
    "supplemental": ("supplemental", None),
}

_RE_2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<id>\d+)_(?P<index>\d+)$")
_RE_2020_EVAL = re.compile(r"^id_(?P<id>\d+)_(?P<index>\d+)$")
_RE_ANON = re.compile(r"^section_(?P<section>\d+)_(?P<index>\d+)$")
_RE_SECTION = re.compile(
    r"^section_(?P<section>\d+)"
    r"(?:_(?P<domain>source|target))?"
    r"(?:_(?P<split>train|test|supplemental))?"
    r"(?:_(?P<label>normal|anomaly))?"
    r"_(?P<index>\d+)"
    r"(?:_(?P<tail>.*))?$"
)
_RE_SECTION_LOOSE = re.compile(r"^section_(?P<section>\d+)(?:_(?P<tail>.*))?$")
_RE_FUSED = re.compile(r"^(?P<key>[A-Za-z][A-Za-z-]*[A-Za-z])(?P<value>\d+(?:\.\d+)?)$")
_RE_YEAR = re.compile(r"(?i)^(?:.*dcase[-_ ]?)?(202[0-6])(?!\d)")
_MIMII_LABELS = {"normal": "normal", "abnormal": "anomaly", "anomaly": "anomaly"}
_FOLDER_LABELS = {"normal": "normal", "anomaly": "anomaly", "abnormal": "anomaly"}


#: DCASE 2026 Task 2 machine types (organisers' baseline, datasets/machine_type_2026_{dev,eval}.yaml)
DCASE2026_DEV_MACHINE_TYPES: tuple[str, ...] = (
    "ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu")
DCASE2026_EVAL_MACHINE_TYPES: tuple[str, ...] = (
    "ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander")
#: the 2026 machine types no earlier year used (ToyCar and fan: every year; ToyDrone: 2023 eval;
#: ToothBrush: 2024 eval) -- a machine folder with one of these names is a DCASE 2026 folder
DCASE2026_ONLY_MACHINE_TYPES: frozenset[str] = frozenset(
    {"ToyCarEmu", "bearingEmu", "gearboxEmu", "sliderEmu", "valveEmu",
     "SewingMachine", "BlowerDustCollector", "Sander"})
#: channels of the official clips per year (2026: left = near mic, right = far mic; earlier: mono)
DCASE_CHANNELS: dict[int, int] = {2020: 1, 2021: 1, 2022: 1, 2023: 1, 2024: 1, 2025: 1, 2026: 2}


class UnparsedNameError(DataError):
    """A path matches none of the known layouts. ``reason`` says which rule it broke."""

    def __init__(self, path: Union[str, Path], reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_audio_path(path: Union[str, Path]) -> bool:
    """True when the file extension is one auscult reads (``.wav``/``.flac``, any case)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def find_audio_files(root: Union[str, Path], recursive: bool = True) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The one audio-file finder: ``(files auscult reads, [(file, why it is left out), ...])``.

    Files are those with an :data:`AUDIO_EXTENSIONS` extension (any case) below ``root`` (or directly
    in it with ``recursive=False``), sorted; hidden files and folders (``.name``) are ignored.
    Audio-looking files of another format (:data:`UNSUPPORTED_AUDIO_EXTENSIONS`) are listed with the
    reason, so a caller reports them instead of dropping them silently. A file ``root`` is itself
    the answer when it is audio.
    """
    root = Path(root)
    if root.is_file():
        return ([root], []) if is_audio_path(root) else ([], [(root, _unsupported_reason(root))])
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    candidates = root.rglob("*") if recursive else root.iterdir()
    for p in sorted(candidates):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel) or not p.is_file():
            continue
        ext = p.suffix.lower()
        if ext in AUDIO_EXTENSIONS:
            files.append(p)
        elif ext in UNSUPPORTED_AUDIO_EXTENSIONS:
            skipped.append((p, _unsupported_reason(p)))
    return files, skipped


def _unsupported_reason(path: Path) -> str:
    ext = path.suffix.lower() or "(none)"
    return f"unsupported audio format {ext!r} (convert to .wav or .flac)"


def pair_attributes(tail: str) -> dict[str, str]:
    """Pair an attribute tail (``"car_A1_spd_28V_mic_1"``) into ``{key: value}``, best-effort.

    Never raises. Rules, in order: ``noAttribute`` or an empty tail -> ``{}``; empty tokens
    (``ac_0.03_``) are dropped; at a key position, a fused token (letters then a number,
    ``weight15``) splits into key and number (keys never end in digits in the official names);
    otherwise the token pairs with the next one; a lone last token maps to ``""``. Repeated keys get ``#2``, ``#3`` suffixes.
    The raw tail stays in ``Clip.attributes_raw``; this dict is a convenience.
    """
    tokens = [t for t in tail.split("_") if t != ""]
    if not tokens or tokens == ["noAttribute"]:
        return {}
    out: dict[str, str] = {}

    def put(k: str, v: str) -> None:
        key, n = k, 2
        while key in out:
            key, n = f"{k}#{n}", n + 1
        out[key] = v

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        left = len(tokens) - i
        fused = _RE_FUSED.match(tok)
        if fused:
            put(fused["key"], fused["value"])
            i += 1
        elif left >= 2:
            put(tok, tokens[i + 1])
            i += 2
        else:
            put(tok, "")
            i += 1
    return out


def infer_year(path: Union[str, Path], root: Union[str, Path, None] = None) -> Optional[int]:
    """A DCASE year (2020–2026) named by a folder between ``root`` and the file, else None.

    A folder counts when its name contains ``dcase`` followed by the year (``dcase2023-mini``,
    ``DCASE_2024_task2``, ``dcase2026t2``) or starts with the year (``2022``, ``2025_dev``).

    The innermost folder that names a year wins (``…/dcase2023-mini/dev_data/fan/train``).
    Without ``root`` every folder of the path is considered.
    """
    p = Path(path)
    parents = list(p.parents)
    if root is not None:
        r = Path(root)
        keep = []
        for q in parents:
            keep.append(q)
            if q == r:
                break
        parents = keep
    for q in parents:
        m = _RE_YEAR.search(q.name)
        if m:
            return int(m.group(1))
    return None


def _section(s: str) -> str:
    return f"{int(s):02d}"


def parse_path(
    path: Union[str, Path],
    root: Union[str, Path, None] = None,
    year: Optional[int] = None,
) -> Clip:
    """Parse one audio path into a :class:`Clip`.

    Args:
        path: the audio file (need not exist: only the path is read).
        root: the dataset root. When given, the path must lie inside it and the machine folder
            must lie below it; folder-name year hints are only taken from inside it.
        year: the DCASE year, when the caller knows it (wins over inference).

    Raises:
        UnparsedNameError: the path matches no layout; ``.reason`` says why.
    """
    p = Path(path)
    if not is_audio_path(p):
        raise UnparsedNameError(p, f"not an audio file (extension {p.suffix or '(none)'!r}; "
                                   f"expected one of {', '.join(AUDIO_EXTENSIONS)})")
    parts_up = p.parent.parts
    if root is not None:
        try:
            rel = p.relative_to(root)
        except ValueError:
            raise UnparsedNameError(p, f"path is not inside the dataset root {root}") from None
        depth = len(rel.parts) - 1  # folders between root and the file
    else:
        depth = len(parts_up)
    stem = p.stem
    folder = p.parent.name
    hinted = year if year is not None else infer_year(p, root)

    def machine_at(levels: int) -> str:
        # levels = how many folders up from the file the machine folder sits (2 = grandparent);
        # the machine folder may be the root itself (scanning ``dev_data/fan`` or ``my_press``)
        if depth < levels - 1 or len(p.parents) <= levels - 1 or not p.parents[levels - 1].name:
            raise UnparsedNameError(
                p, f"no machine folder: expected <machine>/{folder}/{p.name}"
                   + (f" inside {root}" if root is not None else ""))
        return p.parents[levels - 1].name

    # --- own data and MIMII: label folders -------------------------------------------------
    if folder.lower() in _FOLDER_LABELS:  # the folder decides, whatever the file is called
        label = _FOLDER_LABELS[folder.lower()]
        above = p.parent.parent.name
        if depth >= 3 and re.fullmatch(r"id_\d+", above):
            return Clip(path=p, machine=machine_at(3), section=_section(above[3:]), domain=None,
                        split="train" if label == "normal" else "test", label=label,
                        index=int(stem) if stem.isdigit() else None, layout="mimii", year=year)
        if depth >= 3 and above.lower() in ("train", "test"):
            return Clip(path=p, machine=machine_at(3), split=above.lower(), label=label,
                        layout="folder", year=year)
        return Clip(path=p, machine=machine_at(2), split="train" if label == "normal" else "test",
                    label=label, layout="folder", year=year)

    if folder not in SPLIT_FOLDERS:
        raise UnparsedNameError(
            p, f"parent folder {folder!r} is not a split folder "
               f"({'/'.join(SPLIT_FOLDERS)}) nor a label folder (normal/anomaly)")
    folder_split, folder_domain = SPLIT_FOLDERS[folder]
    machine = machine_at(2)

    # --- 2020 -------------------------------------------------------------------------------
    m = _RE_2020.match(stem)
    if m:
        if folder not in ("train", "test"):
            raise UnparsedNameError(p, f"a DCASE 2020 name must sit in train/ or test/, not {folder}/")
        if folder == "train" and m["label"] != "normal":
            raise UnparsedNameError(p, "an anomaly in a train/ folder (training data is normal only)")
        return Clip(path=p, machine=machine, section=_section(m["id"]), domain=None,
                    split=folder_split, label=m["label"], index=int(m["index"]),
                    layout="dcase2020", year=2020 if year is None else year)
    m = _RE_2020_EVAL.match(stem)
    if m:
        label = "normal" if folder == "train" else None
        return Clip(path=p, machine=machine, section=_section(m["id"]), domain=None,
                    split=folder_split, label=label, index=int(m["index"]),
                    layout="dcase2020-eval", year=2020 if year is None else year)

    # --- 2025 supplemental ------------------------------------------------------------------
    if folder == "supplemental":
        m = _RE_SECTION.match(stem)
        loose = _RE_SECTION_LOOSE.match(stem)
        if not loose:
            raise UnparsedNameError(p, "a supplemental/ file name must start with section_SS_")
        if m and m["label"] == "anomaly":
            raise UnparsedNameError(p, "an anomaly in supplemental/ (supplemental data is normal only)")
        return Clip(path=p, machine=machine, section=_section(loose["section"]),
                    domain=m["domain"] if m else None, split="supplemental", label="normal",
                    index=int(m["index"]) if m else None,
                    attributes_raw=(m["tail"] or "") if m else (loose["tail"] or ""),
                    attributes=pair_attributes((m["tail"] or "") if m else (loose["tail"] or "")),
                    layout="dcase2025-supplemental", year=2025 if year is None else year)

    # --- anonymised eval names --------------------------------------------------------------
    m = _RE_ANON.match(stem)
    if m:
        if folder_domain is not None:  # 2021 eval: source_test/ target_test/
            return Clip(path=p, machine=machine, section=_section(m["section"]), domain=folder_domain,
                        split="test", label=None, index=int(m["index"]), layout="dcase2021",
                        year=2021 if year is None else year)
        label = "normal" if folder == "train" else None
        return Clip(path=p, machine=machine, section=_section(m["section"]), domain=None,
                    split=folder_split, label=label, index=int(m["index"]),
                    layout="dcase-anonymous", year=hinted)

    # --- 2021 test folders and the 2022–2026 grammar ----------------------------------------
    m = _RE_SECTION.match(stem)
    if not m:
        if stem.startswith("section_"):
            raise UnparsedNameError(
                p, "starts with section_SS but no clip number follows the "
                   "[source|target]_[train|test]_[normal|anomaly] tokens")
        raise UnparsedNameError(
            p, "matches no DCASE name (expected section_SS_…, normal|anomaly_id_II_NNNNNNNN or "
               "id_II_NNNNNNNN) and its folder is not normal/ or anomaly/")
    name_split = m["split"]
    if name_split is not None and name_split != folder_split:
        raise UnparsedNameError(p, f"the name says {name_split!r} but the file sits in {folder}/")
    domain = m["domain"]
    if folder_domain is not None and domain is not None and domain != folder_domain:
        raise UnparsedNameError(p, f"the name says {domain!r} but the file sits in {folder}/")
    domain = domain or folder_domain
    label = m["label"]
    if folder_split == "train":
        if label == "anomaly":
            raise UnparsedNameError(p, "an anomaly in a train/ folder (training data is normal only)")
        label = "normal"
    tail = m["tail"] or ""
    if folder_domain is not None or hinted == 2021:
        layout, yr = "dcase2021", 2021
    else:
        layout, yr = "dcase2022", hinted
    return Clip(path=p, machine=machine, section=_section(m["section"]), domain=domain,
                split=folder_split, label=label, index=int(m["index"]), attributes_raw=tail,
                attributes=pair_attributes(tail), layout=layout,
                year=yr if year is None else year)
