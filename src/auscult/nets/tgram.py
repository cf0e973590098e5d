"""Waveform branches (Tgram, TFgram) and the log-mel/Tgram/TFgram + MobileFaceNet combiner.

* :class:`TgramNet` (STgram-MFN): ``Conv1d(1, n_mels, kernel=n_fft, stride=hop, padding=n_fft//2)``
  so the frame count equals a centered STFT's ``1 + T // hop``, then three blocks of
  [LayerNorm over time, LeakyReLU(0.2), Conv1d k=3 p=1]. Output ``[B, n_mels, frames]``.
* :class:`TFgramNet`: Conv1d(1->64, k=11, s=5, p=5)+BN+ReLU; a conv block (64 ch) + MaxPool1d(4);
  a conv block (64 -> ``mid_channels``, 128 as in the OS-SCL code, 64 in the paper's Table I) +
  adaptive max-pool to 2x the log-mel frame count; a conv block (-> ``n_mels`` ch) + adaptive
  max-pool to the frame count. A conv block is a k=3 conv followed by a dilated (d=2) k=3 conv,
  each with BN+ReLU (:class:`DilatedConvBlock`). Output ``[B, n_mels, frames]``.
* :class:`TFSTgramMFN`: stacks any of log-mel / Tgram / TFgram as 1-3 channels and feeds
  :class:`~auscult.nets.mobilefacenet.MobileFaceNet`; ``forward(wave, logmel) -> [B, emb_dim]``.

The log-mel itself comes from ``auscult.features.LogMel`` (same hop/n_mels), computed by the
caller, so the front-end stays one definition. At the 10 s / 16 kHz / hop 512 / 128-mel geometry
these modules compute exactly what the OS-SCL authors' ``model/net.py`` (``TgramNet``,
``MobileFaceNet``) and ``model/waveq.py`` (``TFgram``, used layers) compute; ``tests/reference``
checks it against numbers produced by that code.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.fastpath import train_autocast
from ..errors import ConfigError
from .layers import NetBase, StaticAdaptiveMaxPool1d, check_positive, conv_out_len
from .mobilefacenet import MobileFaceNet
from .registry import register_net


def _waveform_fast_path() -> bool:
    """The ``waveform`` fast path (:mod:`auscult.engine.fastpath`), never while exporting or tracing
    (the plain modules are what ONNX gets)."""
    from ..engine.fastpath import settings

    if not settings().waveform or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return not (hasattr(torch, "onnx") and torch.onnx.is_in_onnx_export())


def _children_hooked(module: nn.Module) -> bool:
    """Whether a forward hook sits on one of ``module``'s sub-modules (the fast paths skip some of
    them; with a hook there the plain path runs, so the hook sees what it hooked)."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules() if m is not module)


def _wave_inputs(g):
    return {"n_samples": g.n_samples, "n_fft": g.n_fft, "hop_length": g.hop_length, "n_mels": g.n_mels}


@register_net("tgram", inputs=_wave_inputs, description="Tgram waveform branch -> [B, n_mels, frames] map")
class TgramNet(NetBase):
    """Learnable time-frequency map from the raw waveform ``[B, T]`` (or ``[B, 1, T]``).

    Args:
        n_samples: waveform length T the net is built for (LayerNorm needs the frame count).
        n_fft, hop_length: kernel and stride of the extractor conv (match the log-mel's).
        n_mels: output channels (match the log-mel's bins so the maps can be stacked).
        n_layers: number of [LayerNorm, LeakyReLU(0.2), Conv1d k=3] blocks (3).
    """

    def __init__(self, n_samples: int, n_fft: int, hop_length: int,
                 n_mels: int, n_layers: int = 3):
        super().__init__()
        self.frames = conv_out_len(n_samples, n_fft, hop_length, n_fft // 2)
        check_positive([n_samples, self.frames], "TgramNet", "pass the waveform length in samples")
        self.input_shapes = ((n_samples,),)
        self.input_names = ("wave",)
        self.output_shape = (n_mels, self.frames)
        self.extractor = nn.Conv1d(1, n_mels, n_fft, hop_length, n_fft // 2, bias=False)
        self.encoder = nn.Sequential(*[
            nn.Sequential(
                nn.LayerNorm(self.frames),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv1d(n_mels, n_mels, 3, 1, 1, bias=False),
            )
            for _ in range(n_layers)
        ])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 2:
            wave = wave.unsqueeze(1)
        return self.encoder(self.extractor(wave))


class DilatedConvBlock(nn.Sequential):
    """Conv1d k=3 -> BN -> ReLU -> Conv1d k=3 dilation 2 -> BN -> ReLU (bias-free convs).

    Children ``0`` conv, ``1`` BN, ``2`` ReLU, ``3`` dilated conv, ``4`` BN, ``5`` ReLU.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv1d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, 3, 1, 2, dilation=2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True),
        )


@register_net("tfgram", inputs=_wave_inputs, description="TFgram waveform branch -> [B, n_mels, frames] map")
class TFgramNet(NetBase):
    """Multi-scale waveform encoder whose output aligns with the log-mel's frames.

    Args:
        n_samples: waveform length T; the pooling sizes are computed from it.
        n_fft, hop_length: only used to compute the log-mel frame count ``1 + T // hop``.
        n_mels: channels of the output map (128 by default, to stack with a 128-bin log-mel).
        channels: width of the stem and the first conv block (64).
        mid_channels: output width of the second conv block: 128 (the OS-SCL code, default) or 64
            (the OS-SCL paper's Table I).

    Weights are initialised as in the OS-SCL code (Xavier-uniform convolutions, BN 1 / 0).
    """

    def __init__(self, n_samples: int, n_fft: int, hop_length: int,
                 n_mels: int, channels: int = 64, mid_channels: int = 128):
        super().__init__()
        frames = conv_out_len(n_samples, n_fft, hop_length, n_fft // 2)
        l1 = conv_out_len(n_samples, 11, 5, 5)
        l2 = conv_out_len(l1, 4, 4)
        check_positive([channels, mid_channels, n_mels], "TFgramNet", "use positive channel counts")
        if l2 < 2 * frames:
            raise ConfigError(
                f"TFgramNet: a {n_samples}-sample input gives {l2} steps after the first pooling, fewer "
                f"than 2x the {frames} log-mel frames; use a smaller hop_length or a longer input"
            )
        self.frames = frames
        self.input_shapes = ((n_samples,),)
        self.input_names = ("wave",)
        self.output_shape = (n_mels, frames)
        self.stem = nn.Sequential(nn.Conv1d(1, channels, 11, 5, 5, bias=False), nn.BatchNorm1d(channels),
                                  nn.ReLU(inplace=True))
        self.block1 = DilatedConvBlock(channels, channels)
        self.pool1 = nn.MaxPool1d(4)
        self.block2 = DilatedConvBlock(channels, mid_channels)
        self.pool2 = StaticAdaptiveMaxPool1d(l2, 2 * frames)
        self.block3 = DilatedConvBlock(mid_channels, n_mels)
        self.pool3 = StaticAdaptiveMaxPool1d(2 * frames, frames)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 2:
            wave = wave.unsqueeze(1)
        with train_autocast(wave):  # bf16 fast path (opt-in): this branch's 1-D convs gain most from it
            out = self._forward(wave)
        return out.to(wave.dtype) if out.dtype != wave.dtype else out

    def _forward(self, wave: torch.Tensor) -> torch.Tensor:
        if not _waveform_fast_path() or _children_hooked(self):
            x = self.pool1(self.block1(self.stem(wave)))
            x = self.pool2(self.block2(x))
            return self.pool3(self.block3(x))
        if not torch.is_grad_enabled() and not self.training and wave.device.type == "cpu":
            return self._forward_nlc(wave)
        # training fast path (same values; gradients equal up to the order of accumulation): the 4x
        # max-pool as a reshape + max (no index bookkeeping), ATen's adaptive max-pool (the OS-SCL
        # code's own op), whose backward is cheaper than the gather's
        x = self.block1(self.stem(wave))
        n = x.shape[-1] // 4 * 4
        x = x[..., :n].unflatten(-1, (-1, 4)).max(-1).values
        x = F.adaptive_max_pool1d(self.block2(x), self.pool2.out_len)
        return F.adaptive_max_pool1d(self.block3(x), self.pool3.out_len)

    def _forward_nlc(self, wave: torch.Tensor) -> torch.Tensor:
        """Eval-mode forward with every activation in channels-last layout (``[B, C, 1, L]`` NHWC,
        i.e. ``[B, L, C]`` in memory): oneDNN's 1-D convolutions then run without the layout
        reorders they pay on ``[B, C, L]`` tensors (~20 % less time for this branch), and the
        poolings reduce contiguous channel vectors. Same arithmetic as :meth:`_forward`."""
        wave = wave.contiguous()
        b, _, t = wave.shape
        # the same [B, 1, 1, T] view with channels-last strides: oneDNN then writes the stem's output
        # NHWC directly (with the ambiguous default strides of a 1-channel tensor it writes NCHW)
        x = _nhwc_sequence(self.stem, wave.as_strided((b, 1, 1, t), (t, 1, t, 1)))
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op unless oneDNN chose otherwise
        x = _nhwc_sequence(self.block1, x)
        x = F.max_pool2d(x, (1, self.pool1.kernel_size), (1, self.pool1.stride))
        x = _nhwc_gather_pool(self.pool2, _nhwc_sequence(self.block2, x))
        x = _nhwc_gather_pool(self.pool3, _nhwc_sequence(self.block3, x))
        return x[:, :, 0].contiguous()


def _nhwc_sequence(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a ``Sequential`` of Conv1d / BatchNorm1d (eval) / ReLU / Identity on ``[B, C, 1, L]``
    channels-last activations (the 1-D layers as their 2-D equivalents)."""
    for m in seq:
        if isinstance(m, nn.Conv1d):
            w = m.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            x = F.conv2d(x, w, m.bias, (1, m.stride[0]), (0, m.padding[0]), (1, m.dilation[0]), m.groups)
        elif isinstance(m, nn.BatchNorm1d):
            x = F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)
        elif isinstance(m, nn.ReLU):
            x = F.relu_(x) if m.inplace else F.relu(x)
        elif not isinstance(m, nn.Identity):
            raise TypeError(f"no channels-last form for {type(m).__name__}")  # pragma: no cover
    return x


def _nhwc_gather_pool(pool: StaticAdaptiveMaxPool1d, x: torch.Tensor) -> torch.Tensor:
    """:class:`StaticAdaptiveMaxPool1d` on ``[B, C, 1, L]`` channels-last activations (same windows)."""
    rows = x.permute(0, 2, 3, 1)[:, 0]  # [B, L, C], contiguous
    if rows.shape[1] != pool.in_len:
        return pool(x[:, :, 0]).unsqueeze(2)  # raises the usual error
    g = rows.index_select(1, pool.index).view(rows.shape[0], pool.out_len, pool.width, rows.shape[2]).amax(2)
    return g.permute(0, 2, 1).unsqueeze(2)  # [B, C, 1, O], channels-last


CHANNELS = ("logmel", "tgram", "tfgram")


def _combo_inputs(g):
    return {**_wave_inputs(g)}


class TFSTgramMFN(NetBase):
    """Stack log-mel / Tgram / TFgram maps as channels and embed them with MobileFaceNet.

    ``forward(wave [B, T], logmel [B, n_mels, frames]) -> [B, emb_dim]``; the log-mel must be
    computed with the same hop_length / n_mels (centered STFT, so ``frames = 1 + T // hop`` for any
    n_fft). ``forward_maps`` returns the stacked ``[B, C, n_mels, frames]`` input of MobileFaceNet.

    Args:
        channels: which maps to stack, in order (any non-empty subset of
            ``("logmel", "tgram", "tfgram")``).
        activation, emb_dim, readout: passed to MobileFaceNet (``readout`` ``"gdc"``: the published
            global depthwise conv; see :mod:`auscult.nets.mobilefacenet`).
        tgram_kernel: kernel (and 2x padding) of Tgram's extractor conv; ``None`` = ``n_fft``. The
            OS-SCL code uses 1024 with a 2048-point log-mel.
        tfgram_mid_channels: width of TFgram's second conv block (128 code / 64 paper).
    """

    def __init__(self, n_samples: int, n_fft: int, hop_length: int,
                 n_mels: int, channels: Sequence[str] = ("logmel", "tgram"),
                 emb_dim: int = 128, activation: str = "prelu", tgram_kernel: int | None = None,
                 tfgram_mid_channels: int = 128, readout: str = "gdc"):
        super().__init__()
        chans = tuple(c.lower() for c in channels)
        bad = [c for c in chans if c not in CHANNELS]
        if not chans or bad or len(set(chans)) != len(chans):
            raise ConfigError(f"channels must be distinct names from {CHANNELS}, got {tuple(channels)!r}")
        self.channels = chans
        frames = conv_out_len(n_samples, n_fft, hop_length, n_fft // 2)
        self.input_shapes = ((n_samples,), (n_mels, frames))
        self.input_names = ("wave", "logmel")
        self.output_shape = (emb_dim,)
        kernel = n_fft if tgram_kernel is None else int(tgram_kernel)
        if "tgram" in chans and conv_out_len(n_samples, kernel, hop_length, kernel // 2) != frames:
            raise ConfigError(f"TFSTgramMFN: tgram_kernel={kernel} gives a different frame count than the "
                              f"log-mel's {frames}; use an even kernel")
        self.tgram = TgramNet(n_samples, kernel, hop_length, n_mels) if "tgram" in chans else None
        self.tfgram = (TFgramNet(n_samples, n_fft, hop_length, n_mels, mid_channels=tfgram_mid_channels)
                       if "tfgram" in chans else None)
        self.mfn = MobileFaceNet((len(chans), n_mels, frames), emb_dim=emb_dim, activation=activation,
                                 readout=readout)

    def forward_maps(self, wave: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        """The stacked ``[B, C, n_mels, frames]`` maps fed to MobileFaceNet."""
        maps = []
        for c in self.channels:
            if c == "logmel":
                maps.append(logmel)
            elif c == "tgram":
                maps.append(self.tgram(wave))
            else:
                maps.append(self.tfgram(wave))
        return torch.stack(maps, dim=1)

    def forward(self, wave: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        return self.mfn(self.forward_maps(wave, logmel))


register_net(
    "stgram_mfn", inputs=_combo_inputs,
    defaults={"channels": ("logmel", "tgram"), "emb_dim": 128, "activation": "prelu"},
    description="STgram-MFN: log-mel + Tgram stacked, MobileFaceNet embedding",
)(TFSTgramMFN)
register_net(
    "tfstgram_mfn", inputs=_combo_inputs,
    defaults={"channels": ("logmel", "tgram", "tfgram"), "emb_dim": 128, "activation": "prelu"},
    description="TFSTgram-MFN: log-mel + Tgram + TFgram stacked, MobileFaceNet embedding",
)(TFSTgramMFN)
