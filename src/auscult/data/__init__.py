"""Clips, file-name grammars, dataset indexes, ground truth, torch datasets and the simulator."""

from .clip import Clip

__all__ = ["Clip"]
