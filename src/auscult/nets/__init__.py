"""Networks for anomalous sound detection, found by name in :data:`NETS`.

>>> from auscult.nets import NETS, build_for_clip, ClipGeometry
>>> net = NETS.build("mobilefacenet")                      # 10 s, 16 kHz, 128-mel log-mel
>>> net12 = build_for_clip("mobilefacenet", ClipGeometry(duration=12.0), activation="relu")

Every net is an ``nn.Module`` built for the input it will see (shapes are computed from the
constructor's shape arguments), exposes ``input_shapes`` / ``input_names`` / ``output_shape``
and ``example_inputs(batch)``, and returns embeddings ``[B, E]`` (the waveform branches
``tgram``/``tfgram`` return ``[B, n_mels, frames]`` maps; ``autoencoder`` returns its
reconstruction). Heads (ArcFace, AdaCos, ...) live in ``auscult.losses``.
"""

from .layers import ClipGeometry, NetBase, ScaleBatchNorm, SqueezeExcite, StaticAdaptiveMaxPool1d
from .registry import NETS, build_for_clip, input_kwargs, register_net
from . import autoencoder, dualbranch, mobilefacenet, mobilenetv2, resnet, tgram  # noqa: F401  (register)
from .autoencoder import DenseAutoencoder
from .dualbranch import DualBranchNet
from .mobilefacenet import MobileFaceNet
from .mobilenetv2 import MobileNetV2
from .resnet import ResNet18TFAP, ResNet50Encoder
from .tgram import TFgramNet, TFSTgramMFN, TgramNet

__all__ = [
    "NETS", "ClipGeometry", "NetBase", "build_for_clip", "input_kwargs", "register_net",
    "MobileFaceNet", "TgramNet", "TFgramNet", "TFSTgramMFN", "MobileNetV2", "ResNet18TFAP",
    "ResNet50Encoder", "DualBranchNet", "DenseAutoencoder", "ScaleBatchNorm", "SqueezeExcite",
    "StaticAdaptiveMaxPool1d",
]
