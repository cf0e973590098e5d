"""Batch-level augmentations that run on the training device, seeded by a ``torch.Generator``.

mixup (:mod:`.mixup`), log-mixup-exp with a FIFO memory bank (:mod:`.logmixupexp`), random resized
crop and random frame crop (:mod:`.crop`), pre-/post-normalisation (:mod:`.norm`), statistics and
feature exchange with their label construction (:mod:`.exchange`).

:data:`AUGMENTATIONS` lists them by name for ``auscult list`` (the recipe key a method reads each
one's settings from is in its description).
"""

from ..registry import Registry

from .crop import RandomResizedCrop, random_frame_crop, random_resized_crop
from .exchange import (PARTNERS, derangement, exchange_labels, feature_exchange, original_labels, partner_of,
                       statistics_exchange, with_feature_exchange, with_statistics_exchange)
from .logmixupexp import LogMixupExp, MemoryBank, log_mixup_exp
from .mixup import Mixup, MixupResult, mix_labels, mixup, sample_lambda
from .norm import PostNorm, PreNorm, post_norm

__all__ = [
    "AUGMENTATIONS", "Mixup", "MixupResult", "mixup", "mix_labels", "sample_lambda", "LogMixupExp", "MemoryBank", "log_mixup_exp",
    "RandomResizedCrop", "random_resized_crop", "random_frame_crop", "PreNorm", "PostNorm", "post_norm",
    "derangement", "statistics_exchange", "feature_exchange", "exchange_labels", "original_labels",
    "with_statistics_exchange", "with_feature_exchange", "partner_of", "PARTNERS",
]

#: the augmentations a recipe composes (``auscult list`` shows them)
AUGMENTATIONS = Registry("augmentation")
AUGMENTATIONS.register("mixup", defaults={"alpha": 1.0, "dist": "beta", "p": 1.0},
                       description="mixup of waveforms or features with a shuffled partner, lam ~ Beta/Uniform "
                                   "(recipe key augment.mixup; OS-SCL, SSL4ASD)")(Mixup)
AUGMENTATIONS.register("logmixupexp", defaults={"alpha": 0.4},
                       description="log-mixup-exp: mix log-mel inputs in the linear domain against a FIFO memory "
                                   "bank of past inputs (augment.logmixupexp; CLSIA)")(LogMixupExp)
AUGMENTATIONS.register("rrc", description="random resized crop of a spectrogram on a larger canvas, stretched back "
                                          "(augment.rrc; CLSIA)")(RandomResizedCrop)
AUGMENTATIONS.register("statex", description="statistics exchange: swap each frame's mean/std over frequency with a "
                                             "partner's, with exchange labels (augment.statistics_exchange; SSL4ASD)"
                       )(with_statistics_exchange)
AUGMENTATIONS.register("featex", description="feature exchange: swap one branch of a dual-branch embedding with a "
                                             "partner's, with exchange labels (augment.feature_exchange; SSL4ASD)"
                       )(with_feature_exchange)
AUGMENTATIONS.register("frame_crop", description="random crop of a fixed number of frames (ProtoASD's 64-frame "
                                                 "crops; protoasd.crop_frames)")(random_frame_crop)
