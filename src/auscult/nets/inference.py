"""Inference copies of trained networks: batch norm folded into the convolution before it, weights
and 4-D activations in ``channels_last`` layout.

Both change only how the arithmetic is laid out, not what is computed (outputs agree with the
eval-mode original to float rounding, ~1e-6 relative): folding removes one pass over every
feature map per batch norm, and oneDNN's CPU convolutions (depthwise ones above all) run faster on
NHWC tensors. ``benchmarks/bench_train.py`` measures both rows. The original module is untouched:
train it, checkpoint it and load state into it as before; build the copy once after training (or
after loading) and score with it.

>>> fast = inference_copy(model)          # eval mode, no gradients needed
>>> with torch.inference_mode():
...     emb = fast(x)
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

__all__ = ["fold_batchnorm", "inference_copy"]

_CONVS = (nn.Conv1d, nn.Conv2d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution inside an ``nn.Sequential`` into
    that convolution (in place, eval semantics: running statistics); the batch norm becomes an
    ``nn.Identity`` so indices and state-dict prefixes of the rest stay put. Returns the number folded.

    Only ``Sequential`` neighbours are folded: there the convolution's output feeds nothing but the
    batch norm. ``module`` must be in eval mode (a folded net cannot train its statistics any more).
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode (call .eval() first)")
    n = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (isinstance(conv, _CONVS) and isinstance(bn, _BNS) and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                seq._modules[a] = _fuse(conv, bn)
                seq._modules[b] = nn.Identity()
                n += 1
    return n


def _fuse(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """``fuse_conv_bn_eval`` with the folded weight and bias computed in float64 and rounded once
    to the convolution's dtype (folding in float32 rounds twice)."""
    fused = fuse_conv_bn_eval(conv, bn)
    if conv.weight.dtype == torch.float64:
        return fused
    with torch.no_grad():
        w, b = fuse_conv_bn_weights(
            conv.weight.double(), None if conv.bias is None else conv.bias.double(), bn.running_mean.double(),
            bn.running_var.double(), bn.eps, None if bn.weight is None else bn.weight.double(),
            None if bn.bias is None else bn.bias.double())
        fused.weight.copy_(w.to(fused.weight.dtype))
        fused.bias.copy_(b.to(fused.bias.dtype))
    return fused


def _to_channels_last(_module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4
                 else a for a in args)


def inference_copy(module: nn.Module, *, fold: bool = True, channels_last: bool | None = None) -> nn.Module:
    """A deep copy of ``module`` in eval mode with its gradients off, batch norms folded
    (``fold``) and 2-D convolutions in ``channels_last`` layout (``channels_last``: weights
    converted, and every 4-D input of each convolution made NHWC; ``None`` = the ``channels_last``
    fast path's setting, on by default, see :mod:`auscult.engine.fastpath`). Outputs equal the
    eval-mode original's to float rounding."""
    if channels_last is None:
        from ..engine.fastpath import settings

        channels_last = settings().channels_last
    out = copy.deepcopy(module).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    if fold:
        fold_batchnorm(out)
    if channels_last:
        for m in out.modules():
            if isinstance(m, nn.Conv2d):
                m.to(memory_format=torch.channels_last)
                m.register_forward_pre_hook(_to_channels_last)
    return out
