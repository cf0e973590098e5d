"""Submission files: write them with the official names, read any system's, evaluate by name.

File names per year (``<type>`` machine type, ``SS`` section, ``II`` machine ID):

* 2020: ``anomaly_score_<type>_id_II.csv`` (no decision files that year)
* 2021: ``anomaly_score_<type>_section_SS_{source|target}_test.csv`` and
  ``decision_result_<type>_section_SS_{source|target}_test.csv``
* 2022-2026: ``anomaly_score_<type>_section_SS_test.csv`` and
  ``decision_result_<type>_section_SS_test.csv`` (2026: unchanged, as the organisers' baseline
  writes them; evaluation-set rows use the anonymised names ``section_00_0000.wav``...)

Rows are ``name,value`` with no header and base file names only; decisions are 0/1.

:func:`evaluate_submission` joins every row to the ground truth **by file name** and fails with
:class:`~auscult.errors.SubmissionError` on a missing file, a missing, extra or duplicate name, or
an unparsable value, naming the files. It never pairs rows by position.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.clip import Clip
from ..data.groundtruth import TruthRow, read_ground_truth, read_name_aliases
from ..errors import SubmissionError
from .protocols import Result, _check_year, evaluate_scores

__all__ = [
    "submission_filename",
    "write_submission",
    "read_submission_file",
    "evaluate_submission",
    "ANOMALY_SCORE",
    "DECISION_RESULT",
]

ANOMALY_SCORE = "anomaly_score"
DECISION_RESULT = "decision_result"
_MAX_LISTED = 5


def submission_filename(kind: str, machine: str, section: str, year: int, domain: Optional[str] = None) -> str:
    """The official submission file name.

    Args:
        kind: ``"anomaly_score"`` or ``"decision_result"``.
        machine, section: machine type and two-digit section (machine ID for 2020).
        year: 2020-2026.
        domain: ``"source"``/``"target"``; required for 2021, ignored otherwise.
    """
    year = _check_year(year)
    if kind not in (ANOMALY_SCORE, DECISION_RESULT):
        raise SubmissionError(f"kind must be {ANOMALY_SCORE!r} or {DECISION_RESULT!r}, got {kind!r}")
    if not re.fullmatch(r"\d{2}", str(section)):
        raise SubmissionError(f"section must be two digits such as '00', got {section!r}")
    if year == 2020:
        if kind == DECISION_RESULT:
            raise SubmissionError("DCASE 2020 had no decision files; only anomaly_score_<type>_id_II.csv")
        return f"{kind}_{machine}_id_{section}.csv"
    if year == 2021:
        if domain not in ("source", "target"):
            raise SubmissionError(f"2021 submission files are per domain: domain must be 'source' or 'target', got {domain!r}")
        return f"{kind}_{machine}_section_{section}_{domain}_test.csv"
    return f"{kind}_{machine}_section_{section}_test.csv"


def _file_key(c_machine: str, c_section: str, c_domain: Optional[str], year: int):
    return (c_machine, c_section, c_domain if year == 2021 else None)


def _fmt_score(v: float) -> str:
    return repr(float(v))


def write_submission(
    clips: Sequence[Clip],
    scores,
    decisions,
    out_dir: str | Path,
    year: int,
) -> list[Path]:
    """Write the official submission files for ``clips``.

    Args:
        clips: the scored clips (machine, section, and for 2021 the domain, must be set).
        scores: one finite anomaly score per clip.
        decisions: one 0/1 decision per clip, or ``None`` to write anomaly scores only.
            Ignored for 2020 (that year had no decision files).
        out_dir: created if needed.
        year: 2020-2026; selects the file names.

    Returns:
        The written paths (anomaly-score files first within each group), rows sorted by name.
    """
    year = _check_year(year)
    clips = list(clips)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != len(clips):
        raise SubmissionError(f"{s.size} scores for {len(clips)} clips")
    if not np.isfinite(s).all():
        bad = [clips[i].name for i in np.flatnonzero(~np.isfinite(s))[:3]]
        raise SubmissionError(f"non-finite anomaly scores for {bad}; refusing to write a submission")
    dec = None
    if decisions is not None and year != 2020:
        dec = np.asarray(decisions).ravel()
        if dec.size != len(clips):
            raise SubmissionError(f"{dec.size} decisions for {len(clips)} clips")
        if not np.isin(dec, (0, 1)).all():
            raise SubmissionError("decisions must be 0 (normal) or 1 (anomaly)")
    groups: dict[tuple, list[int]] = {}
    names: dict[tuple, set[str]] = {}
    for i, c in enumerate(clips):
        if year == 2021 and c.domain not in ("source", "target"):
            raise SubmissionError(f"{c.path}: 2021 submission files are per domain but the clip has none")
        key = _file_key(c.machine, c.section, c.domain, year)
        seen = names.setdefault(key, set())
        if c.name in seen:
            raise SubmissionError(f"{c.path}: duplicate clip name {c.name!r} in one submission file")
        seen.add(c.name)
        groups.setdefault(key, []).append(i)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for (machine, section, domain), idx in sorted(groups.items(), key=lambda kv: tuple(x or "" for x in kv[0])):
        idx = sorted(idx, key=lambda i: clips[i].name)
        p = out / submission_filename(ANOMALY_SCORE, machine, section, year, domain)
        p.write_text("".join(f"{clips[i].name},{_fmt_score(s[i])}\n" for i in idx), encoding="utf-8")
        written.append(p)
        if dec is not None:
            p = out / submission_filename(DECISION_RESULT, machine, section, year, domain)
            p.write_text("".join(f"{clips[i].name},{int(dec[i])}\n" for i in idx), encoding="utf-8")
            written.append(p)
    return written


def read_submission_file(path: str | Path, kind: str = ANOMALY_SCORE) -> dict[str, float]:
    """Read one submission file: ``{name: value}``.

    Strict: every non-blank row is ``name,value`` with a base file name, a finite number (0/1 for
    decisions) and a name not seen before in the file. Errors name the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SubmissionError(f"{path}: submission file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read submission file ({exc})") from None
    out: dict[str, float] = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise SubmissionError(f"{path}:{lineno}: expected 2 columns 'name,value', got {len(row)}: {','.join(row)!r}")
        name, value = row[0].strip(), row[1].strip()
        if "/" in name or "\\" in name:
            raise SubmissionError(f"{path}:{lineno}: {name!r} is a path; submission rows use base file names only")
        try:
            v = float(value)
        except ValueError:
            raise SubmissionError(f"{path}:{lineno}: value {value!r} is not a number") from None
        if not math.isfinite(v):
            raise SubmissionError(f"{path}:{lineno}: value {value!r} is not finite")
        if kind == DECISION_RESULT and v not in (0.0, 1.0):
            raise SubmissionError(f"{path}:{lineno}: decision must be 0 or 1, got {value!r}")
        if name in out:
            raise SubmissionError(f"{path}:{lineno}: duplicate name {name!r} (each clip must appear once)")
        out[name] = v
    return out


def _listing(items: Sequence[str]) -> str:
    items = sorted(items)
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def _unalias(rows: dict[str, float], machine: str, aliases: dict, path: Path, problems: list[str]) -> dict[str, float]:
    """Map attribute-bearing names to the ground truth's anonymised names (2023-2026 eval sets)."""
    if not aliases:
        return rows
    out: dict[str, float] = {}
    for name, v in rows.items():
        canon = aliases.get((machine, name), name)
        if canon in out:
            problems.append(f"{path}: clip {canon!r} appears twice (once as {name!r}, its attribute-bearing name)")
        out[canon] = v
    return out


def evaluate_submission(
    scores_dir: str | Path,
    ground_truth_dir: str | Path,
    year: int,
    max_fpr: float = 0.1,
) -> Result:
    """Evaluate a submission folder against ground truth with the ``year``'s official protocol.

    Every ground-truth group (machine type, section, and domain for 2021) must have its
    anomaly-score file; decision files are optional but must then exist for every group. Rows are
    joined to the ground truth by name. Where the ground truth has ``ground_truth_attributes/``
    (2023-2026 evaluation sets), rows may use either the anonymised or the attribute-bearing name.

    Raises:
        SubmissionError: missing or unexpected files, missing/extra/duplicate names, bad values --
            all problems found are listed, each with the file it concerns.
        DataError: unreadable ground truth.
    """
    year = _check_year(year)
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise SubmissionError(f"{scores_dir}: submission folder not found")
    truth = read_ground_truth(ground_truth_dir, year)
    aliases = read_name_aliases(ground_truth_dir, year)
    expected: dict[tuple, list[TruthRow]] = {}
    for r in truth:
        expected.setdefault(_file_key(r.machine, r.section, r.domain, year), []).append(r)

    score_files = {k: scores_dir / submission_filename(ANOMALY_SCORE, k[0], k[1], year, k[2]) for k in expected}
    dec_files = {}
    if year != 2020:
        dec_files = {k: scores_dir / submission_filename(DECISION_RESULT, k[0], k[1], year, k[2]) for k in expected}
    problems: list[str] = []

    missing = [p.name for p in score_files.values() if not p.is_file()]
    if missing:
        problems.append(f"missing anomaly-score file(s) in {scores_dir}: {_listing(missing)}")
    known = {p.name for p in score_files.values()} | {p.name for p in dec_files.values()}
    present = {p.name for p in scores_dir.glob("*.csv") if p.name.startswith((ANOMALY_SCORE, DECISION_RESULT))}
    extra = present - known
    if extra:
        problems.append(
            f"file(s) in {scores_dir} that match no ground-truth group (wrong machine, section or "
            f"year layout?): {_listing(extra)}"
        )
    dec_present = [k for k, p in dec_files.items() if p.is_file()]
    use_dec = bool(dec_present)
    if use_dec and len(dec_present) != len(dec_files):
        absent = [p.name for k, p in dec_files.items() if not p.is_file()]
        problems.append(
            f"decision files exist for some groups but not for: {_listing(absent)} (write all or none)"
        )
    if problems:
        raise SubmissionError("submission does not match the ground truth:\n  - " + "\n  - ".join(problems))

    clips: list[Clip] = []
    scores: list[float] = []
    decisions: list[float] = []
    for key, rows in sorted(expected.items(), key=lambda kv: tuple(x or "" for x in kv[0])):
        want = {r.name for r in rows}
        sub = _unalias(read_submission_file(score_files[key], ANOMALY_SCORE), key[0], aliases, score_files[key], problems)
        dsub = None
        if use_dec:
            dsub = _unalias(read_submission_file(dec_files[key], DECISION_RESULT), key[0], aliases, dec_files[key], problems)
        for path, got in ((score_files[key], sub), (dec_files.get(key), dsub)):
            if got is None:
                continue
            gt_file = f"ground truth of {key[0]} section {key[1]}" + (f" ({key[2]})" if key[2] else "")
            lack = want - set(got)
            more = set(got) - want
            if lack:
                problems.append(f"{path}: {len(lack)} name(s) of the {gt_file} are missing: {_listing(lack)}")
            if more:
                problems.append(f"{path}: {len(more)} name(s) not in the {gt_file}: {_listing(more)}")
        if problems:
            continue
        for r in sorted(rows, key=lambda r: r.name):
            clips.append(
                Clip(path=Path(r.name), machine=r.machine, section=r.section, domain=r.domain,
                     split="test", label=r.label, year=year)
            )
            scores.append(sub[r.name])
            if dsub is not None:
                decisions.append(dsub[r.name])
    if problems:
        raise SubmissionError("submission does not match the ground truth:\n  - " + "\n  - ".join(problems))
    return evaluate_scores(clips, scores, year, decisions=decisions if use_dec else None, max_fpr=max_fpr)
