"""Clips, file-name grammars, dataset indexes, ground truth, torch datasets and the simulator."""

from .clip import Clip
from .index import DatasetIndex, Unparsed
from .manifest import read_manifest, write_manifest
from .naming import UnparsedNameError, pair_attributes, parse_path

__all__ = [
    "Clip",
    "DatasetIndex",
    "Unparsed",
    "UnparsedNameError",
    "pair_attributes",
    "parse_path",
    "read_manifest",
    "write_manifest",
]
