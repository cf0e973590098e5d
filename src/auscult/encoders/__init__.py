"""Clip encoders (waveform -> one vector per clip) and the small-data detector built on them.

::

    from auscult.encoders import BandStatsEncoder, EmbeddingDetector
    det = EmbeddingDetector(BandStatsEncoder(n_bands=32, stats=("mean", "flux")),
                            backend={"name": "selective_mahalanobis"})
    det.fit(train_waves)                 # all clips fit the model; the threshold comes from
    det.threshold                        # leave-one-out scores of the same clips
    scores = det.score(test_waves)

Encoders here have nothing to train on the user's data (fixed features, or a network frozen
after pre-training), which is what a folder of a few dozen clips calls for. See
``docs/benchmarks.md`` (small data) for how they compare.
"""

from .base import ENCODERS, BandStatsEncoder, ClipEncoder, LogMelStatsEncoder, build_encoder
from .cnn import DEFAULT_ENCODER, PRETRAINED, CNNEncoder, pretrained_path  # registers 'cnn'
from .detector import EmbeddingDetector, FusedDetector, threshold_from_normal_scores

__all__ = ["DEFAULT_ENCODER", "ENCODERS", "BandStatsEncoder", "CNNEncoder", "ClipEncoder", "EmbeddingDetector", "FusedDetector", "LogMelStatsEncoder",
           "PRETRAINED", "build_encoder", "pretrained_path", "threshold_from_normal_scores"]
