"""Heads and losses: ArcFace / Noisy-ArcMix, sub-cluster AdaCos, SupCon, InfoNCE + MoCo queue,
prototypical losses. Every loss is found by name in ``LOSSES``; heads in ``HEADS``.

Build with ``LOSSES.build(name, emb_dim=..., n_classes=...)``; every factory accepts the keyword
arguments it needs and its registry defaults hold the published hyper-parameters.
"""

from .base import LOSSES, as_soft_labels
from .heads import HEADS, FeaturePerturbationHead, ProjectionMLP
from .arcface import ArcFace, NoisyArcMix
from .adacos import SubClusterAdaCos
from .supcon import SupConLoss
from .infonce import InfoNCEMoCo, momentum_update
from .prototypical import PrototypicalLoss

__all__ = [
    "LOSSES", "HEADS", "as_soft_labels", "ProjectionMLP", "FeaturePerturbationHead", "ArcFace", "NoisyArcMix",
    "SubClusterAdaCos", "SupConLoss", "InfoNCEMoCo", "momentum_update", "PrototypicalLoss",
]
