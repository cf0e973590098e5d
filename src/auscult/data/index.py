"""The dataset index: every clip under a root, and every file that could not be described.

``DatasetIndex.scan(root)`` walks a folder (a DCASE ``dev_data``/``eval_data`` tree, a MIMII
release, an own-data folder with ``normal/`` and ``anomaly/`` subfolders, or any mix), parses
each audio file with :func:`auscult.data.naming.parse_path`, and keeps the files it could not
parse in ``unparsed`` with the reason. Nothing is skipped silently:

* ``.wav``/``.flac`` files become clips, or land in ``unparsed`` (bad name, or a header that is
  not RIFF/WAVE, RF64 or fLaC: "not audio");
* other audio-looking files (``.mp3``, ``.ogg``, ...) land in ``unparsed`` as unsupported;
* everything else (``attributes_00.csv``, READMEs, ground-truth CSVs) is counted in
  ``other_files`` but not listed.

``attributes_SS.csv`` files beside the split folders (2022+: columns ``file_name,d1p,d1v,
d2p,d2v,...``, ``file_name`` = ``<machine>/<split>/<name>``) are read, and their key/value pairs
become the clips' ``attributes`` (they are authoritative: they pair values that contain ``_``
correctly, and they describe anonymised eval names that carry no attributes themselves).

**Channels and DCASE 2026.** The header check also reads each file's channel count into
``Clip.channels``. DCASE 2026 shares the 2022–2025 grammar and layout but ships two-channel clips
(left = near mic, right = far mic), so the year is decided per machine folder: clips of the
2022+ grammar whose year no folder name gives are DCASE 2026 when their machine type is one only
2026 uses (:data:`~auscult.data.naming.DCASE2026_ONLY_MACHINE_TYPES`) or when any clip of the
machine folder is two-channel (every earlier year is mono). In a DCASE 2026 folder (detected, or
named by a folder / ``year=2026``), a file without exactly two channels is an error: ``scan``
raises :class:`~auscult.errors.DataError` naming every such file, or with
``channel_errors="report"`` lists them in ``unparsed`` with ``fatal=True``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import DataError
from .clip import Clip
from .naming import AUDIO_EXTENSIONS, DCASE2026_ONLY_MACHINE_TYPES, UNSUPPORTED_AUDIO_EXTENSIONS, UnparsedNameError, parse_path
_RE_ATTR_CSV = re.compile(r"^attributes_(\d+)\.csv$")
#: layouts of the 2022+ grammar (the families a DCASE 2026 tree parses into)
_LAYOUTS_2022_GRAMMAR = ("dcase2022", "dcase-anonymous")
CHANNEL_ERRORS = ("raise", "report")


@dataclass(frozen=True)
class Unparsed:
    """A file the index could not turn into a clip, and why.

    ``fatal`` marks a file that makes the dataset unusable as it stands (a file without two
    channels in a DCASE 2026 tree); other entries are files the index could not describe.
    """

    path: Path
    reason: str
    fatal: bool = False

    def to_dict(self) -> dict:
        return {"path": str(self.path), "reason": self.reason, "fatal": self.fatal}


def read_audio_header(path: Union[str, Path]) -> tuple[Optional[str], Optional[int]]:
    """``(reason, channels)`` from a file's first bytes.

    ``reason`` is ``None`` when the header looks like WAV (RIFF/WAVE, RF64, BW64) or FLAC, else
    why not ("not audio: ..."). ``channels`` is the channel count from the WAV ``fmt `` chunk or
    the FLAC ``STREAMINFO`` block, ``None`` when it cannot be found in the header.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(42)
            if len(head) == 0:
                return "not audio: the file is empty (0 bytes)", None
            if head[:4] == b"fLaC":
                # the first metadata block must be STREAMINFO (type 0, 34 bytes from byte 8);
                # byte 20 holds the low 4 bits of the sample rate, 3 bits of (channels - 1), 1 bit
                if len(head) >= 21 and head[4] & 0x7F == 0:
                    return None, ((head[20] >> 1) & 0x07) + 1
                return None, None
            if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
                return None, _wav_channels(f)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", None
    return "not audio: header is not RIFF/WAVE, RF64 or fLaC", None


def _wav_channels(f) -> Optional[int]:
    """Channels from the ``fmt `` chunk of an open RIFF/RF64 file (chunks walked from byte 12)."""
    pos = 12
    for _ in range(64):  # fmt comes before data; a few LIST/JUNK/ds64 chunks may precede it
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            return None
        cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"fmt ":
            body = f.read(4)
            if len(body) < 4:
                return None
            n = struct.unpack("<H", body[2:4])[0]
            return n or None
        if cid == b"data" or clen == 0xFFFFFFFF:
            return None
        pos += 8 + clen + (clen & 1)
    return None


def sniff_audio_header(path: Union[str, Path]) -> Optional[str]:
    """``None`` when the first bytes look like WAV (RIFF/WAVE, RF64) or FLAC, else a reason."""
    return read_audio_header(path)[0]


def _is_selected(value: Any, want: Any) -> bool:
    if want is None:
        return True
    if isinstance(want, (list, tuple, set, frozenset)):
        return value in want
    return value == want


def read_attributes_csv(path: Union[str, Path]) -> dict[str, dict[str, str]]:
    """Read one ``attributes_SS.csv``: ``{file_name: {key: value}}`` (``d1p`` names ``d1v``...).

    ``file_name`` keys are kept as written (``fan/train/section_00_...wav``). Empty keys or
    values are dropped. Raises :class:`DataError` naming the file and row for malformed rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read attribute file ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return {}
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "file_name":
        raise DataError(f"{path}: first column must be 'file_name' (official attributes_SS.csv "
                        f"header 'file_name,d1p,d1v,...'), got {header[:3]}")
    pairs: list[tuple[int, int]] = []
    for j, h in enumerate(header):
        m = re.fullmatch(r"d(\d+)p", h)
        if m and f"d{m.group(1)}v" in header:
            pairs.append((j, header.index(f"d{m.group(1)}v")))
    out: dict[str, dict[str, str]] = {}
    bad: list[int] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) > len(header) or not row[0].strip():
            bad.append(lineno)
            continue
        row = [c.strip() for c in row] + [""] * (len(header) - len(row))
        attrs = {row[p]: row[v] for p, v in pairs if row[p] and row[v]}
        out[row[0]] = attrs
    if bad:
        raise DataError(f"{path}: malformed rows {bad[:20]}{' ...' if len(bad) > 20 else ''} "
                        f"(each row needs a file_name and at most {len(header)} columns)")
    return out


class DatasetIndex:
    """Clips plus the files that could not be described.

    Attributes:
        root: the scanned folder (or the manifest file), or ``None`` for ``from_clips``.
        clips: the clips, sorted by path.
        unparsed: :class:`Unparsed` records (path + reason), sorted by path.
        other_files: how many non-audio files were seen and skipped (CSV, README, ...).
    """

    def __init__(self, clips: Iterable[Clip], unparsed: Iterable[Unparsed] = (),
                 root: Union[str, Path, None] = None, other_files: int = 0):
        self.clips: list[Clip] = sorted(clips, key=lambda c: str(c.path))
        self.unparsed: list[Unparsed] = sorted(unparsed, key=lambda u: str(u.path))
        self.root = Path(root) if root is not None else None
        self.other_files = other_files

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_clips(cls, clips: Iterable[Clip]) -> "DatasetIndex":
        """An index over clips built elsewhere (tests, the simulator)."""
        return cls(clips)

    @classmethod
    def from_manifest(cls, path: Union[str, Path]) -> "DatasetIndex":
        """An index over a CSV manifest (see :mod:`auscult.data.manifest`); each clip's channel
        count is read from its header (``None`` when it cannot be read)."""
        from .manifest import read_manifest

        clips = [replace(c, channels=read_audio_header(c.path)[1]) for c in read_manifest(path)]
        return cls(clips, root=path)

    @classmethod
    def scan(cls, root: Union[str, Path], *, year: Optional[int] = None,
             check_headers: bool = True, read_attributes: bool = True,
             channel_errors: str = "raise") -> "DatasetIndex":
        """Walk ``root`` and describe every audio file under it.

        Args:
            root: a dataset folder (or a ``.csv`` manifest, passed to :meth:`from_manifest`).
            year: the DCASE year when known (otherwise inferred, see :mod:`auscult.data.naming`
                and, for 2026, the module docstring).
            check_headers: read the first bytes of each audio file, report files whose header is
                not WAV/FLAC as "not audio" (cheap; catches text saved as ``.wav``) and record the
                channel count in ``Clip.channels`` (without it, DCASE 2026 is only recognised by
                folder name, machine type or ``year``, and channel counts are not checked).
            read_attributes: read ``attributes_SS.csv`` files into the clips' attributes.
            channel_errors: what a file without two channels in a DCASE 2026 tree does:
                ``"raise"`` a :class:`DataError` naming every such file, or ``"report"`` it in
                ``unparsed`` with ``fatal=True`` (what ``auscult data scan`` does).

        Raises:
            DataError: ``root`` does not exist, an attribute CSV is malformed, or (with
                ``channel_errors="raise"``) a DCASE 2026 tree holds files that are not two-channel.
        """
        if channel_errors not in CHANNEL_ERRORS:
            from ..errors import ConfigError

            raise ConfigError(f"channel_errors must be one of {CHANNEL_ERRORS}, got {channel_errors!r}")
        root = Path(root)
        if root.is_file() and root.suffix.lower() == ".csv":
            return cls.from_manifest(root)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found (pass the folder that holds "
                            f"<machine>/<split>/ subfolders, or a .csv manifest)")
        clips: list[Clip] = []
        unparsed: list[Unparsed] = []
        other = 0
        attr_files: list[Path] = []
        seen_dirs: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen_dirs:  # a symlink loop or a second link to a folder already walked
                dirnames[:] = []
                unparsed.append(Unparsed(Path(dirpath), f"folder already scanned via another path ({real})"))
                continue
            seen_dirs.add(real)
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                ext = p.suffix.lower()
                if ext in AUDIO_EXTENSIONS:
                    try:
                        clip = parse_path(p, root=root, year=year)
                    except UnparsedNameError as exc:
                        unparsed.append(Unparsed(p, exc.reason))
                        continue
                    if check_headers:
                        why, n_ch = read_audio_header(p)
                        if why is not None:
                            unparsed.append(Unparsed(p, why))
                            continue
                        clip = replace(clip, channels=n_ch)
                    clips.append(clip)
                elif ext in UNSUPPORTED_AUDIO_EXTENSIONS:
                    unparsed.append(Unparsed(p, f"unsupported audio format {ext!r} "
                                                f"(convert to .wav or .flac)"))
                else:
                    other += 1
                    if _RE_ATTR_CSV.match(fn):
                        attr_files.append(p)
        clips = _mark_2021(clips, explicit_year=year)
        clips, why_2026 = _mark_2026(clips, explicit_year=year)
        clips, wrong = _check_2026_channels(clips, why_2026)
        if wrong and channel_errors == "raise":
            shown = "; ".join(f"{u.path} ({u.reason.split(':')[0]})" for u in wrong[:20])
            more = f"; ... ({len(wrong) - 20} more)" if len(wrong) > 20 else ""
            raise DataError(
                f"{root}: {len(wrong)} file(s) in a DCASE 2026 tree are not two-channel: {shown}{more}. "
                f"DCASE 2026 clips are stereo (left = near mic, right = far mic): restore the original "
                f"files from the official archive, or pass the dataset's year if it is not DCASE 2026 "
                f"(`auscult data scan {root}` lists every file and why its folder counts as 2026)")
        unparsed += wrong
        if read_attributes and attr_files:
            clips = apply_attribute_files(clips, attr_files)
        return cls(clips, unparsed, root=root, other_files=other)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self):
        return iter(self.clips)

    def select(self, machine=None, section=None, domain=None, split=None, label=None,
               year=None) -> list[Clip]:
        """Clips whose fields equal the given values (``None`` = any; a list/tuple = any of).

        To ask for unlabelled clips, pass ``label=(None,)``.
        """
        if section is not None and not isinstance(section, (list, tuple, set, frozenset)):
            section = f"{int(section):02d}" if str(section).isdigit() else section
        return [c for c in self.clips
                if _is_selected(c.machine, machine) and _is_selected(c.section, section)
                and _is_selected(c.domain, domain) and _is_selected(c.split, split)
                and _is_selected(c.label, label) and _is_selected(c.year, year)]

    def machines(self) -> list[str]:
        """Machine types, sorted."""
        return sorted({c.machine for c in self.clips})

    def sections(self, machine: Optional[str] = None) -> list[str]:
        """Sections of one machine type (or of all), sorted."""
        return sorted({c.section for c in self.clips if machine is None or c.machine == machine})

    def domains(self, machine: Optional[str] = None) -> list[str]:
        """Domains present (``None`` excluded), sorted."""
        return sorted({c.domain for c in self.clips
                       if c.domain is not None and (machine is None or c.machine == machine)})

    def counts(self) -> list[dict]:
        """One row per (machine, section, domain, split, label, year, channels) with its clip
        count, sorted.

        ``year`` is in the key so that e.g. DCASE 2020 and 2023 ``fan`` clips under one root
        are not lumped together; ``channels`` (``None`` when headers were not read) shows a
        DCASE 2026 tree's two-channel clips."""
        cnt = Counter((c.machine, c.section, c.domain, c.split, c.label, c.year, c.channels) for c in self.clips)
        keys = sorted(cnt, key=lambda k: tuple("" if x is None else str(x) for x in k))
        return [dict(machine=k[0], section=k[1], domain=k[2], split=k[3], label=k[4], year=k[5],
                     channels=k[6], count=cnt[k]) for k in keys]

    def channel_counts(self) -> dict[Optional[int], int]:
        """How many clips have 1, 2, ... channels (``None``: not read)."""
        return dict(sorted(Counter(c.channels for c in self.clips).items(), key=lambda kv: kv[0] or 0))

    @property
    def errors(self) -> list[Unparsed]:
        """The ``fatal`` entries of ``unparsed`` (files without two channels in a DCASE 2026 tree)."""
        return [u for u in self.unparsed if u.fatal]

    def to_dict(self) -> dict:
        """A JSON-ready summary: totals, count rows and every unparsed file with its reason."""
        return {
            "root": str(self.root) if self.root is not None else None,
            "clips": len(self.clips),
            "machines": self.machines(),
            "layouts": dict(sorted(Counter(c.layout for c in self.clips).items())),
            "years": {str(k): v for k, v in sorted(Counter(c.year for c in self.clips).items(),
                                                   key=lambda kv: kv[0] or 0)},
            "channels": {str(k): v for k, v in self.channel_counts().items()},
            "counts": self.counts(),
            "unparsed": [u.to_dict() for u in self.unparsed],
            "other_files": self.other_files,
        }

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    # ------------------------------------------------------------------ ground truth
    def join_ground_truth(self, gt_dir: Union[str, Path], year: Optional[int] = None) -> "DatasetIndex":
        """A new index whose test clips carry the labels (and domains) of the official
        ground-truth files in ``gt_dir`` (see :mod:`auscult.data.groundtruth` for layouts).

        Only machine types present in both the index and the ground truth are joined. Every
        test clip of such a machine must be listed, and every listed name must be a test clip
        of the index; a clip already labelled must agree with the file.

        Raises:
            DataError: the ground truth names none of the indexed machine types, or lists
                missing / extra / conflicting names (all listed in the message).
        """
        from .groundtruth import detect_year, read_ground_truth

        gt_dir = Path(gt_dir)
        if year is None:
            year = detect_year(gt_dir)
            if year is None:
                raise DataError(f"{gt_dir}: no ground-truth files found (expected "
                                f"ground_truth_data/ground_truth_<type>_section_SS_test.csv or "
                                f"the 2020/2021 per-ID / per-domain names)")
        rows = read_ground_truth(gt_dir, year=year)
        ours = set(self.machines())
        covered = {r.machine for r in rows} & ours
        if not covered:
            raise DataError(f"{gt_dir}: the ground truth covers machine types "
                            f"{sorted({r.machine for r in rows})}, none of the indexed ones {sorted(ours)}")
        test_clips = [c for c in self.clips if c.split == "test" and c.machine in covered]
        # 2021 eval names repeat across source_test/ and target_test/: then the domain is part of the key
        by_domain = len({(c.machine, c.name) for c in test_clips}) < len(test_clips)

        def key(machine: str, name: str, domain: Optional[str]) -> tuple:
            return (machine, name, domain) if by_domain else (machine, name)

        def show(k: tuple) -> str:
            return "/".join(x for x in (k[0], k[2] if len(k) > 2 else None, k[1]) if x)

        truth = {key(r.machine, r.name, r.domain): r for r in rows if r.machine in covered}
        tests = {key(c.machine, c.name, c.domain): c for c in test_clips}
        if len(tests) < len(test_clips):
            raise DataError(f"{self.root}: test clip names repeat within a machine type and domain; "
                            f"cannot join ground truth by name")
        missing = sorted(show(k) for k in tests.keys() - truth.keys())
        extra = sorted(show(k) for k in truth.keys() - tests.keys())
        conflict = sorted(f"{show(k)} (name says {c.label}, ground truth says {truth[k].label})"
                          for k, c in tests.items()
                          if k in truth and c.label is not None and c.label != truth[k].label)
        problems = []
        for what, names in (("test clips missing from the ground truth", missing),
                            ("ground-truth names with no test clip", extra),
                            ("label conflicts", conflict)):
            if names:
                shown = ", ".join(names[:50]) + (f", ... ({len(names) - 50} more)" if len(names) > 50 else "")
                problems.append(f"{len(names)} {what}: {shown}")
        if problems:
            raise DataError(f"{gt_dir}: ground truth does not match the index under {self.root}: "
                            + "; ".join(problems))
        out = []
        for c in self.clips:
            r = truth.get(key(c.machine, c.name, c.domain)) if c.split == "test" else None
            if r is None:
                out.append(c)
            else:
                out.append(replace(c, label=r.label, domain=r.domain if r.domain is not None else c.domain))
        return DatasetIndex(out, self.unparsed, root=self.root, other_files=self.other_files)


def _mark_2021(clips: list[Clip], explicit_year: Optional[int]) -> list[Clip]:
    """Re-label 2022-grammar train clips as 2021 when their machine folder has 2021 test folders."""
    cache: dict[Path, bool] = {}
    out = []
    for c in clips:
        if c.layout == "dcase2022":
            mdir = Path(c.path).parent.parent
            if mdir not in cache:
                cache[mdir] = (mdir / "source_test").is_dir() or (mdir / "target_test").is_dir()
            if cache[mdir]:
                c = replace(c, layout="dcase2021", year=explicit_year if explicit_year is not None else 2021)
        out.append(c)
    return out


def _mark_2026(clips: list[Clip], explicit_year: Optional[int]) -> tuple[list[Clip], dict[Path, str]]:
    """Re-label 2022+-grammar clips with no year as DCASE 2026, per machine folder, when the folder
    is a 2026 machine type or holds a two-channel clip. Returns the clips and, per machine folder
    that is 2026 (detected or given), why it counts as 2026."""
    why: dict[Path, str] = {}
    undecided: dict[Path, list[int]] = {}
    for i, c in enumerate(clips):
        mdir = Path(c.path).parent.parent
        if c.year == 2026:
            why.setdefault(mdir, "year=2026 was given" if explicit_year == 2026 else "a folder name says 2026")
        elif explicit_year is None and c.year is None and c.layout in _LAYOUTS_2022_GRAMMAR:
            undecided.setdefault(mdir, []).append(i)
    out = list(clips)
    for mdir, idx in undecided.items():
        machine = clips[idx[0]].machine
        stereo = sum(clips[i].channels == 2 for i in idx)
        if machine in DCASE2026_ONLY_MACHINE_TYPES:
            why[mdir] = f"machine type {machine!r} exists only in DCASE 2026"
        elif stereo:
            why[mdir] = f"{stereo} of its {len(idx)} clips are two-channel, which only DCASE 2026 is"
        else:
            continue
        for i in idx:
            out[i] = replace(out[i], year=2026)
    return out, why


def _check_2026_channels(clips: list[Clip], why_2026: dict[Path, str]) -> tuple[list[Clip], list[Unparsed]]:
    """Split off DCASE 2026 clips whose header says they do not have two channels."""
    keep: list[Clip] = []
    wrong: list[Unparsed] = []
    for c in clips:
        if c.year == 2026 and c.channels is not None and c.channels != 2:
            mdir = Path(c.path).parent.parent
            what = "mono file" if c.channels == 1 else f"{c.channels}-channel file"
            wrong.append(Unparsed(
                Path(c.path),
                f"{what} in a DCASE 2026 tree: 2026 clips are two-channel (left = near mic, right = far mic); "
                f"restore the original file (this folder counts as 2026 because "
                f"{why_2026.get(mdir, 'its clips are marked 2026')}; pass --year / year= if it is not 2026 data)",
                fatal=True))
        else:
            keep.append(c)
    return keep, wrong


def apply_attribute_files(clips: Sequence[Clip], files: Iterable[Union[str, Path]]) -> list[Clip]:
    """Set ``attributes`` of clips listed in ``attributes_SS.csv`` files (matched by machine
    folder and base name). Clips whose name carries no attributes (anonymised eval names) also
    get ``attributes_raw`` rebuilt as ``k_v_k_v`` so that ``attribute_key`` tells them apart."""
    table: dict[tuple[Path, str], dict[str, str]] = {}
    for f in files:
        f = Path(f)
        for file_name, attrs in read_attributes_csv(f).items():
            table[(f.parent.resolve(), Path(file_name).name)] = attrs
    out = []
    for c in clips:
        attrs = table.get((Path(c.path).parent.parent.resolve(), c.name))
        if attrs is None:
            out.append(c)
            continue
        raw = c.attributes_raw
        if not raw and attrs:
            raw = "_".join(f"{k}_{v}" for k, v in attrs.items())
        out.append(replace(c, attributes=dict(attrs), attributes_raw=raw))
    return out
