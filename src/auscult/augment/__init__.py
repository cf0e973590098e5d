"""Batch-level augmentations that run on the training device, seeded by a ``torch.Generator``.

mixup (:mod:`.mixup`), log-mixup-exp with a FIFO memory bank (:mod:`.logmixupexp`), random resized
crop and random frame crop (:mod:`.crop`), pre-/post-normalisation (:mod:`.norm`), statistics and
feature exchange with their label construction (:mod:`.exchange`).
"""

from .crop import RandomResizedCrop, random_frame_crop, random_resized_crop
from .exchange import (PARTNERS, derangement, exchange_labels, feature_exchange, original_labels, partner_of,
                       statistics_exchange, with_feature_exchange, with_statistics_exchange)
from .logmixupexp import LogMixupExp, MemoryBank, log_mixup_exp
from .mixup import Mixup, MixupResult, mix_labels, mixup, sample_lambda
from .norm import PostNorm, PreNorm, post_norm

__all__ = [
    "Mixup", "MixupResult", "mixup", "mix_labels", "sample_lambda", "LogMixupExp", "MemoryBank", "log_mixup_exp",
    "RandomResizedCrop", "random_resized_crop", "random_frame_crop", "PreNorm", "PostNorm", "post_norm",
    "derangement", "statistics_exchange", "feature_exchange", "exchange_labels", "original_labels",
    "with_statistics_exchange", "with_feature_exchange", "partner_of", "PARTNERS",
]
