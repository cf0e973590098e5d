"""Read and write the official DCASE Task 2 ground-truth files.

Ground truth is a list of :class:`TruthRow` records ``(machine, section, name, label, domain)``:
one per test clip, keyed by ``(machine, name)`` (base file names repeat across machine types,
e.g. ``section_00_0000.wav``). Labels are ``"normal"``/``"anomaly"``; domains are
``"source"``/``"target"`` or ``None`` where a year has no domains (2020).

File layouts (all CSV, no header, base names only; ``SS`` is a two-digit section, ``II`` a
two-digit machine ID):

==========  ==================================================================================
year        files under the ground-truth folder
==========  ==================================================================================
2020        ``ground_truth_data/ground_truth_<type>_id_II_test.csv`` (rows ``name,label``), or
            the official ``eval_data_list.csv`` (a line with only the machine type, then rows
            ``name,original_name,label``; the ID is read from ``id_II`` in the name)
2021        ``ground_truth_data/ground_truth_<type>_section_SS_{source|target}_test.csv``
            (rows ``name,label``; the domain is in the file name)
2022-2026   ``ground_truth_data/ground_truth_<type>_section_SS_test.csv`` (rows ``name,label``)
            and ``ground_truth_domain/ground_truth_<type>_section_SS_test.csv``
            (rows ``name,domain`` with 0 = source, 1 = target)
==========  ==================================================================================

Labels are 0 = normal, 1 = anomaly. :func:`read_ground_truth` accepts either the folder that
holds ``ground_truth_data/`` or the ``ground_truth_data/`` folder itself.

Typical use::

    rows = read_ground_truth("dcase2023_task2_evaluator", year=2023)
    clips = join_ground_truth(index.clips, rows)          # labels and domains filled in
    write_ground_truth(clips, "out/gt", year=2023)        # the simulator writes its own
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import DataError
from .clip import Clip

__all__ = [
    "TruthRow",
    "YEARS",
    "DATA_DIR",
    "DOMAIN_DIR",
    "ground_truth_filename",
    "read_label_file",
    "read_domain_file",
    "read_eval_data_list",
    "read_ground_truth",
    "write_ground_truth",
    "truth_index",
    "join_ground_truth",
    "detect_year",
    "read_name_aliases",
    "ATTRIBUTES_DIR",
]

YEARS: tuple[int, ...] = (2020, 2021, 2022, 2023, 2024, 2025, 2026)
DATA_DIR = "ground_truth_data"
DOMAIN_DIR = "ground_truth_domain"
ATTRIBUTES_DIR = "ground_truth_attributes"
EVAL_DATA_LIST = "eval_data_list.csv"

_LABELS = {0: "normal", 1: "anomaly"}
_LABEL_CODES = {"normal": 0, "anomaly": 1}
_DOMAINS = {0: "source", 1: "target"}
_DOMAIN_CODES = {"source": 0, "target": 1}

_RE_2020 = re.compile(r"^ground_truth_(?P<machine>.+)_id_(?P<section>\d{2})_test\.csv$")
_RE_2021 = re.compile(
    r"^ground_truth_(?P<machine>.+)_section_(?P<section>\d{2})_(?P<domain>source|target)_test\.csv$"
)
_RE_2022 = re.compile(r"^ground_truth_(?P<machine>.+)_section_(?P<section>\d{2})_test\.csv$")
_RE_ID = re.compile(r"id_(\d{2})")


@dataclass(frozen=True)
class TruthRow:
    """The ground truth of one test clip.

    Attributes:
        machine: machine type.
        section: two-digit section (the machine ID for 2020).
        name: base file name as the submission files spell it.
        label: ``"normal"`` or ``"anomaly"``.
        domain: ``"source"``, ``"target"`` or ``None`` (2020).
    """

    machine: str
    section: str
    name: str
    label: str
    domain: Optional[str] = None


def _check_year(year: int) -> int:
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise DataError(f"year must be one of {YEARS}, got {year!r}") from None
    if year not in YEARS:
        raise DataError(f"year must be one of {YEARS}, got {year}")
    return year


def _check_section(section: str) -> str:
    s = str(section)
    if not re.fullmatch(r"\d{2}", s):
        raise DataError(f"section must be a two-digit string such as '00', got {section!r}")
    return s


def ground_truth_filename(machine: str, section: str, year: int, domain: Optional[str] = None) -> str:
    """The official base name of a ground-truth file (the same name is used in
    ``ground_truth_data/`` and ``ground_truth_domain/``).

    ``domain`` is required for 2021 (one file per domain) and ignored otherwise.
    """
    year = _check_year(year)
    section = _check_section(section)
    if year == 2020:
        return f"ground_truth_{machine}_id_{section}_test.csv"
    if year == 2021:
        if domain not in _DOMAIN_CODES:
            raise DataError(f"2021 ground truth is per domain: domain must be 'source' or 'target', got {domain!r}")
        return f"ground_truth_{machine}_section_{section}_{domain}_test.csv"
    return f"ground_truth_{machine}_section_{section}_test.csv"


def _read_two_column(path: Path, codes: dict[int, str], what: str) -> dict[str, str]:
    """Read ``name,code`` rows; strict: every row two columns, known code, no duplicate name."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: ground-truth file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ground-truth file ({exc})") from None
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(
                f"{path}:{lineno}: expected 2 columns 'name,{what}', got {len(row)}: {','.join(row)!r}"
            )
        name, value = row[0].strip(), row[1].strip()
        try:
            code = int(float(value))
            if float(value) != code:
                raise ValueError
        except ValueError:
            if lineno == 1 and not name.lower().endswith((".wav", ".flac")):
                continue  # a header line such as "name,label"
            raise DataError(f"{path}:{lineno}: {what} must be one of {sorted(codes)}, got {value!r}") from None
        if code not in codes:
            raise DataError(f"{path}:{lineno}: {what} must be one of {sorted(codes)}, got {value!r}")
        if name in out:
            raise DataError(f"{path}:{lineno}: duplicate file name {name!r} (each clip must appear once)")
        out[name] = codes[code]
    if not out:
        raise DataError(f"{path}: ground-truth file has no rows")
    return out


def read_label_file(path: str | Path) -> dict[str, str]:
    """Read an official ``name,label`` file: ``{name: "normal" | "anomaly"}`` (0 = normal, 1 = anomaly)."""
    return _read_two_column(Path(path), _LABELS, "label")


def read_domain_file(path: str | Path) -> dict[str, str]:
    """Read an official ``name,domain`` file: ``{name: "source" | "target"}`` (0 = source, 1 = target)."""
    return _read_two_column(Path(path), _DOMAINS, "domain")


def read_eval_data_list(path: str | Path) -> list[TruthRow]:
    """Read DCASE 2020's ``eval_data_list.csv``.

    The file lists, for each machine type, a line holding only the type, followed by rows
    ``name,original_name,label``. The machine ID (our section) is ``id_II`` in the name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read eval_data_list.csv ({exc})") from None
    rows: list[TruthRow] = []
    seen: set[tuple[str, str]] = set()
    machine: Optional[str] = None
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        row = [c.strip() for c in row]
        if not row or all(not c for c in row):
            continue
        if len(row) == 1 or all(not c for c in row[1:]):
            machine = row[0]
            continue
        if machine is None:
            raise DataError(f"{path}:{lineno}: a clip row comes before any machine-type line")
        if len(row) < 3:
            raise DataError(f"{path}:{lineno}: expected 'name,original_name,label', got {','.join(row)!r}")
        name, label = row[0], row[2]
        m = _RE_ID.search(name) or _RE_ID.search(row[1])
        if m is None:
            raise DataError(f"{path}:{lineno}: cannot find the machine ID ('id_II') in {name!r}")
        if label not in ("0", "1"):
            raise DataError(f"{path}:{lineno}: label must be 0 or 1, got {label!r}")
        if (machine, name) in seen:
            raise DataError(f"{path}:{lineno}: duplicate file name {name!r} for {machine}")
        seen.add((machine, name))
        rows.append(TruthRow(machine, m.group(1), name, _LABELS[int(label)], None))
    if not rows:
        raise DataError(f"{path}: no clip rows found")
    return rows


def _data_dir(root: Path) -> Path:
    if (root / DATA_DIR).is_dir():
        return root / DATA_DIR
    if root.name == DATA_DIR and root.is_dir():
        return root
    raise DataError(
        f"{root}: no '{DATA_DIR}/' folder here (point --ground-truth at the folder that holds "
        f"'{DATA_DIR}/' and, for 2022-2026, '{DOMAIN_DIR}/')"
    )


def detect_year(root: str | Path) -> Optional[int]:
    """Guess the layout family of a ground-truth folder: 2020, 2021, 2022 (= 2022-2026) or ``None``."""
    root = Path(root)
    if (root / EVAL_DATA_LIST).is_file():
        return 2020
    try:
        d = _data_dir(root)
    except DataError:
        return None
    names = [p.name for p in d.glob("ground_truth_*.csv")]
    if any(_RE_2020.match(n) for n in names):
        return 2020
    if any(_RE_2021.match(n) for n in names):
        return 2021
    if any(_RE_2022.match(n) for n in names):
        return 2022
    return None


def read_ground_truth(root: str | Path, year: int) -> list[TruthRow]:
    """Read every ground-truth file of one year's layout under ``root``.

    Args:
        root: the folder holding ``ground_truth_data/`` (and ``ground_truth_domain/`` for
            2022-2026), that ``ground_truth_data/`` folder itself, or (2020) a folder with
            ``eval_data_list.csv``.
        year: 2020-2026; selects the layout (see the module docstring).

    Returns:
        One :class:`TruthRow` per clip, sorted by machine, section, name.

    Raises:
        DataError: no files of that layout, a malformed row, a duplicate name, or (2022-2026)
            label and domain files that do not list the same names.
    """
    year = _check_year(year)
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: ground-truth folder not found")
    rows: list[TruthRow] = []
    if year == 2020 and (root / EVAL_DATA_LIST).is_file() and not (root / DATA_DIR).is_dir():
        rows = read_eval_data_list(root / EVAL_DATA_LIST)
    else:
        data_dir = _data_dir(root)
        files = sorted(data_dir.glob("ground_truth_*.csv"))
        pattern = {2020: _RE_2020, 2021: _RE_2021}.get(year, _RE_2022)
        matched = [(p, pattern.match(p.name)) for p in files]
        matched = [(p, m) for p, m in matched if m is not None]
        if not matched:
            example = ground_truth_filename("fan", "00", year, domain="source")
            raise DataError(
                f"{data_dir}: no {year} ground-truth files (expected names like {example!r}; "
                f"found {[p.name for p in files][:5] or 'none'})"
            )
        for path, m in matched:
            machine, section = m.group("machine"), m.group("section")
            labels = read_label_file(path)
            if year == 2020:
                rows += [TruthRow(machine, section, n, lab, None) for n, lab in labels.items()]
            elif year == 2021:
                dom = m.group("domain")
                rows += [TruthRow(machine, section, n, lab, dom) for n, lab in labels.items()]
            else:
                dpath = data_dir.parent / DOMAIN_DIR / path.name
                if not dpath.is_file():
                    raise DataError(
                        f"{dpath}: domain ground truth missing for {path.name} "
                        f"(2022-2026 need '{DOMAIN_DIR}/{path.name}' with rows 'name,domain')"
                    )
                domains = read_domain_file(dpath)
                only_l = sorted(set(labels) - set(domains))
                only_d = sorted(set(domains) - set(labels))
                if only_l or only_d:
                    raise DataError(
                        f"{path} and {dpath} list different clips: {len(only_l)} only in the label "
                        f"file (e.g. {only_l[:3]}), {len(only_d)} only in the domain file (e.g. {only_d[:3]})"
                    )
                rows += [TruthRow(machine, section, n, lab, domains[n]) for n, lab in labels.items()]
    keys: dict[tuple, TruthRow] = {}
    for r in rows:
        # 2021 has one file per domain: a name may repeat across a section's source and target files
        k = (r.machine, r.name, r.domain) if year == 2021 else (r.machine, r.name)
        if k in keys:
            raise DataError(
                f"{root}: clip {r.name!r} of {r.machine} appears in two ground-truth files "
                f"(sections {keys[k].section} and {r.section})"
            )
        keys[k] = r
    return sorted(rows, key=lambda r: (r.machine, r.section, r.domain or "", r.name))


def write_ground_truth(clips: Iterable[Clip], out_dir: str | Path, year: int) -> list[Path]:
    """Write the official ground-truth files for labelled test clips.

    Only clips with ``split == "test"`` are written; each must carry a label (and, for
    2021-2025, a domain). Rows are sorted by name. Returns the written paths.

    Raises:
        DataError: a test clip without label/domain, or a duplicate name within a machine type.
    """
    year = _check_year(year)
    out_dir = Path(out_dir)
    groups: dict[tuple[str, str, Optional[str]], list[Clip]] = {}
    seen: set[tuple[str, str]] = set()
    for c in clips:
        if c.split != "test":
            continue
        if c.label not in _LABEL_CODES:
            raise DataError(f"{c.path}: test clip has no label ({c.label!r}); cannot write ground truth")
        if year >= 2021 and c.domain not in _DOMAIN_CODES:
            raise DataError(f"{c.path}: test clip has no domain ({c.domain!r}); {year} ground truth needs one")
        if (c.machine, c.name) in seen:
            raise DataError(f"{c.path}: duplicate file name {c.name!r} for machine type {c.machine}")
        seen.add((c.machine, c.name))
        key = (c.machine, c.section, c.domain if year == 2021 else None)
        groups.setdefault(key, []).append(c)
    if not groups:
        raise DataError("no labelled test clips to write ground truth for")
    written: list[Path] = []
    (out_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    if year >= 2022:
        (out_dir / DOMAIN_DIR).mkdir(parents=True, exist_ok=True)
    for (machine, section, domain), group in sorted(groups.items(), key=lambda kv: tuple(x or "" for x in kv[0])):
        group = sorted(group, key=lambda c: c.name)
        fname = ground_truth_filename(machine, section, year, domain=domain)
        p = out_dir / DATA_DIR / fname
        p.write_text("".join(f"{c.name},{_LABEL_CODES[c.label]}\n" for c in group), encoding="utf-8")
        written.append(p)
        if year >= 2022:
            p = out_dir / DOMAIN_DIR / fname
            p.write_text("".join(f"{c.name},{_DOMAIN_CODES[c.domain]}\n" for c in group), encoding="utf-8")
            written.append(p)
    return written


def read_name_aliases(root: str | Path, year: int) -> dict[tuple[str, str], str]:
    """Alternative clip names from ``ground_truth_attributes/`` (2023-2026 evaluation sets).

    The organisers anonymised evaluation names (``section_00_0000.wav``) and later published the
    attribute-bearing names; their ``ground_truth_attributes/ground_truth_<type>_section_SS_test.csv``
    rows are ``anonymised_name,attribute_name_without_extension``. Returns
    ``{(machine, attribute_name + ".wav"): anonymised_name}`` (empty when the folder is absent),
    so a submission written with either spelling can be joined.
    """
    year = _check_year(year)
    root = Path(root)
    try:
        adir = _data_dir(root).parent / ATTRIBUTES_DIR
    except DataError:
        return {}
    if year < 2022 or not adir.is_dir():
        return {}
    out: dict[tuple[str, str], str] = {}
    for path in sorted(adir.glob("ground_truth_*.csv")):
        m = _RE_2022.match(path.name)
        if m is None:
            continue
        machine = m.group("machine")
        text = path.read_text(encoding="utf-8-sig")
        for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise DataError(f"{path}:{lineno}: expected 'name,attribute_name', got {','.join(row)!r}")
            alias = row[1].strip()
            if not alias.endswith((".wav", ".flac")):
                alias += ".wav"
            out[(machine, alias)] = row[0].strip()
    return out


def truth_index(rows: Sequence[TruthRow]) -> dict[tuple, TruthRow]:
    """``{(machine, name): row}`` for joining, or ``{(machine, name, domain): row}`` when names
    repeat across domains (possible with 2021's per-domain files)."""
    by_domain = len({(r.machine, r.name) for r in rows}) < len(rows)
    if by_domain:
        return {(r.machine, r.name, r.domain): r for r in rows}
    return {(r.machine, r.name): r for r in rows}


def join_ground_truth(clips: Iterable[Clip], rows: Sequence[TruthRow], strict: bool = True) -> list[Clip]:
    """Fill label (and domain, where the ground truth has one) into test clips, by ``(machine, name)``
    (and domain, when the ground truth repeats names across domains).

    Clips that are not test clips pass through unchanged. With ``strict=True`` a test clip that
    the ground truth does not list raises :class:`DataError`; with ``strict=False`` it passes
    through unlabelled.
    """
    idx = truth_index(rows)
    by_domain = bool(idx) and len(next(iter(idx))) == 3
    out: list[Clip] = []
    missing: list[Clip] = []
    for c in clips:
        r = idx.get((c.machine, c.name, c.domain) if by_domain else (c.machine, c.name))
        if c.split != "test":
            out.append(c)
        elif r is None:
            missing.append(c)
            out.append(c)
        else:
            out.append(c.with_label(r.label, domain=r.domain))
    if strict and missing:
        raise DataError(
            f"{len(missing)} test clip(s) are not in the ground truth, e.g. {missing[0].path} "
            f"(check the machine type and the ground-truth folder)"
        )
    return out
