"""The ``Clip`` record: one audio file, described once.

A clip is parsed from its path exactly once (see :mod:`auscult.data.naming`); every later
stage carries the record (or its index in a dataset), never a re-parsed file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional

Domain = Literal["source", "target"]
Split = Literal["train", "test", "supplemental"]
Label = Literal["normal", "anomaly"]

DOMAINS: tuple[str, ...] = ("source", "target")
SPLITS: tuple[str, ...] = ("train", "test", "supplemental")
LABELS: tuple[str, ...] = ("normal", "anomaly")


@dataclass(frozen=True)
class Clip:
    """One audio file and everything known about it.

    Attributes:
        path: the file.
        machine: machine type (``fan``, ``ToyCar``, ... or the folder name for own data).
        section: two-digit section string (``"00"``). DCASE 2020 machine IDs play this role.
        domain: ``"source"``, ``"target"`` or ``None`` when the layout has no domains (2020,
            anonymised eval names, own data).
        split: ``"train"``, ``"test"`` or ``"supplemental"`` (2025: clean machine / noise only,
            always normal, never test).
        label: ``"normal"``, ``"anomaly"`` or ``None`` when unknown (eval clips before ground truth
            is joined).
        index: the clip number in the file name, if any.
        attributes_raw: the raw attribute tail of the name (``"spd_28V_mic_1"``), ``""`` if none.
        attributes: best-effort key/value pairs parsed from the tail; never the only record.
        layout: which grammar matched (``"dcase2020"``, ``"dcase2021"``, ``"dcase2022"``,
            ``"dcase2020-eval"``, ``"folder"``, ``"manifest"``, ...).
        year: the DCASE year when known.
        channels: the file's channel count, read from its header by the dataset index
            (:meth:`~auscult.data.index.DatasetIndex.scan`); ``None`` when not read. DCASE 2026
            clips have 2 (left = near mic, right = far mic), earlier years 1. Not part of equality.
    """

    path: Path
    machine: str
    section: str = "00"
    domain: Optional[str] = None
    split: str = "train"
    label: Optional[str] = None
    index: Optional[int] = None
    attributes_raw: str = ""
    attributes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    layout: str = "folder"
    year: Optional[int] = None
    channels: Optional[int] = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The base file name (what submission files and ground truth use)."""
        return Path(self.path).name

    @property
    def is_normal(self) -> bool:
        return self.label == "normal"

    @property
    def is_anomaly(self) -> bool:
        return self.label == "anomaly"

    @property
    def attribute_key(self) -> str:
        """A string that identifies the clip's attribute set within its section and domain."""
        return self.attributes_raw or "noAttribute"

    def with_label(self, label: Optional[str], domain: Optional[str] = None) -> "Clip":
        """A copy with a label (and optionally a domain) joined from ground truth."""
        return replace(self, label=label, domain=domain if domain is not None else self.domain)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "machine": self.machine,
            "section": self.section,
            "domain": self.domain,
            "split": self.split,
            "label": self.label,
            "index": self.index,
            "attributes_raw": self.attributes_raw,
            "attributes": dict(self.attributes),
            "layout": self.layout,
            "year": self.year,
            "channels": self.channels,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Clip":
        d = dict(d)
        d["path"] = Path(d["path"])
        d["attributes"] = dict(d.get("attributes") or {})
        return cls(**d)
