"""Own data described by a CSV manifest.

A manifest is a CSV file with a header. Only ``path`` is required; the other columns are
optional and may be left empty per row:

======== =================================================================================
column   meaning
======== =================================================================================
path     the audio file; relative paths are resolved against the manifest's folder
machine  machine type (default: the DCASE name's machine folder, else the file's folder name)
section  section / machine ID, digits (default ``00``)
domain   ``source`` / ``target`` (default: none)
split    ``train`` / ``test`` / ``supplemental`` (default ``train``)
label    ``normal`` / ``anomaly`` (also ``0`` / ``1``); default ``normal`` for train and
         supplemental rows, unknown for test rows
======== =================================================================================

A path whose name follows a DCASE grammar supplies the defaults for the columns left empty.
Every bad row (missing file, unknown value, duplicate path) is collected and reported in one
:class:`~auscult.errors.DataError` that lists the row numbers (row 1 is the header).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional, Union

from ..errors import DataError
from .clip import DOMAINS, LABELS, SPLITS, Clip
from .naming import UnparsedNameError, is_audio_path, parse_path

COLUMNS: tuple[str, ...] = ("path", "machine", "section", "domain", "split", "label")
_LABEL_ALIASES = {"normal": "normal", "anomaly": "anomaly", "abnormal": "anomaly", "0": "normal", "1": "anomaly"}


def read_manifest(path: Union[str, Path], check_files: bool = True) -> list[Clip]:
    """Read a CSV manifest into clips (``layout="manifest"``).

    Args:
        path: the manifest file.
        check_files: report rows whose audio file does not exist.

    Raises:
        DataError: the manifest is missing/unreadable, has no ``path`` column or unknown
            columns, or has bad rows (all listed with their row numbers).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "path" not in header:
        raise DataError(f"{path}: manifest needs a header with a 'path' column "
                        f"(columns: {','.join(COLUMNS)}; only path is required), got {header}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise DataError(f"{path}: unknown manifest column(s) {unknown} (allowed: {', '.join(COLUMNS)})")
    base = path.parent
    clips: list[Clip] = []
    errors: list[str] = []
    seen: dict[Path, int] = {}
    for rowno, raw in enumerate(reader, start=2):
        if None in raw:  # more cells than header columns
            errors.append(f"row {rowno}: {len(header) + len(raw[None])} cells but the header has {len(header)}")
            continue
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        clip, why = _row_to_clip(row, base, check_files)
        if why:
            errors.append(f"row {rowno}: {why}")
            continue
        assert clip is not None
        if clip.path in seen:
            errors.append(f"row {rowno}: duplicate path {clip.path} (first on row {seen[clip.path]})")
            continue
        seen[clip.path] = rowno
        clips.append(clip)
    if errors:
        rows = sorted({int(e.split(":")[0].split()[1]) for e in errors})
        shown = "; ".join(errors[:30]) + (f"; ... ({len(errors) - 30} more)" if len(errors) > 30 else "")
        raise DataError(f"{path}: {len(errors)} bad row(s) {rows[:50]}: {shown}")
    if not clips:
        raise DataError(f"{path}: manifest lists no clips")
    return clips


def _row_to_clip(row: dict[str, str], base: Path, check_files: bool) -> tuple[Optional[Clip], str]:
    p = row.get("path", "")
    if not p:
        return None, "empty path"
    fp = Path(p).expanduser()
    if not fp.is_absolute():
        fp = Path(os.path.abspath(base / fp))  # normalise "../" without following symlinks
    if not is_audio_path(fp):
        return None, f"{fp} is not a .wav or .flac file"
    if check_files and not fp.is_file():
        return None, f"{fp} does not exist"
    try:
        parsed: Optional[Clip] = parse_path(fp)
    except UnparsedNameError:
        parsed = None
    machine = row.get("machine") or (parsed.machine if parsed else fp.parent.name)
    if not machine:
        return None, "no machine (add a machine column)"
    section = row.get("section") or (parsed.section if parsed else "00")
    if not section.isdigit():
        return None, f"section {section!r} is not a number"
    section = f"{int(section):02d}"
    domain = row.get("domain") or (parsed.domain if parsed else None) or None
    if domain is not None and domain not in DOMAINS:
        return None, f"domain {domain!r} is not one of {', '.join(DOMAINS)}"
    split = row.get("split") or (parsed.split if parsed else "train")
    if split not in SPLITS:
        return None, f"split {split!r} is not one of {', '.join(SPLITS)}"
    lab = row.get("label", "")
    if lab:
        if lab.lower() not in _LABEL_ALIASES:
            return None, f"label {lab!r} is not one of {', '.join(LABELS)} (or 0/1)"
        label: Optional[str] = _LABEL_ALIASES[lab.lower()]
    elif parsed is not None and parsed.label is not None:
        label = parsed.label
    else:
        label = "normal" if split in ("train", "supplemental") else None
    if split in ("train", "supplemental") and label == "anomaly":
        return None, f"an anomaly in the {split} split (training data is normal only; use split=test)"
    return Clip(path=fp, machine=machine, section=section, domain=domain, split=split, label=label,
                index=parsed.index if parsed else None,
                attributes_raw=parsed.attributes_raw if parsed else "",
                attributes=dict(parsed.attributes) if parsed else {},
                layout="manifest", year=parsed.year if parsed else None), ""


def write_manifest(clips, path: Union[str, Path]) -> Path:
    """Write clips as a manifest (paths relative to the manifest's folder where possible)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for c in clips:
            try:
                p = Path(c.path).resolve().relative_to(path.parent.resolve())
            except ValueError:
                p = Path(c.path).resolve()
            w.writerow([p.as_posix(), c.machine, c.section, c.domain or "", c.split, c.label or ""])
    return path
