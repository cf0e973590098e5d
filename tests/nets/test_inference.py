"""Inference copies: batch norm folded, channels_last; outputs equal to the eval-mode original."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from auscult.nets import NETS
from auscult.nets.inference import fold_batchnorm, inference_copy


def _with_statistics(net: nn.Module, shape, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters, then eval()."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, *shape, generator=g) * 2.0 + 0.5)
    return net.eval()


@pytest.mark.parametrize("name,shape", [
    ("mobilefacenet", (1, 64, 63)),
    ("mobilenetv2_050", (1, 64, 63)),
    ("resnet18_tfap", (1, 64, 32)),
])
def test_inference_copy_matches_eval_model(name, shape):
    torch.manual_seed(0)
    net = _with_statistics(NETS.build(name, input_shape=shape), shape)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = inference_copy(net)
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = net(x), fast(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    # the original is untouched: same weights, still has its batch norms, still trainable
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
    assert not any(p.requires_grad for p in fast.parameters()) and not fast.training
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)


def test_fold_counts_and_replaces_only_conv_bn_pairs():
    seq = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4))
    net = _with_statistics(nn.Sequential(seq[:3]), (2, 8, 8))
    tail = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).eval()
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        ref = net(x)
    folded = copy.deepcopy(net)
    assert fold_batchnorm(folded) == 1
    assert isinstance(folded[0][1], nn.Identity) and isinstance(folded[0][0], nn.Conv2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref, rtol=1e-5, atol=1e-6)
    assert fold_batchnorm(tail) == 0  # a batch norm after a Linear stays
    assert isinstance(tail[1], nn.BatchNorm1d)


def test_fold_refuses_training_mode():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net)


@pytest.mark.parametrize("name", sorted(NETS.names()))
def test_every_registered_net_keeps_its_outputs(name):
    """Each net as registered (default geometry), with trained-looking batch-norm statistics: the
    inference copy gives the eval-mode outputs (ScaleBatchNorm and other non-standard norms are left
    alone by the folding, so bias-free nets stay exact too)."""
    torch.manual_seed(0)
    net = NETS.build(name)
    inputs = net.example_inputs(3, seed=1)
    g = torch.Generator().manual_seed(2)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    net.eval()
    fast = inference_copy(net)
    with torch.no_grad():
        ref, got = net(*inputs), fast(*inputs)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()) + 1e-6)


def test_channels_last_only_copy_keeps_batchnorm():
    net = _with_statistics(NETS.build("mobilefacenet", input_shape=(1, 32, 32)), (1, 32, 32))
    fast = inference_copy(net, fold=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(2, 32, 32)  # 3-D input, as MobileFaceNet accepts for one channel
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-5)
