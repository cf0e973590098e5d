"""Random resized crop and random frame crop."""

from __future__ import annotations

import pytest
import torch

from auscult.augment import RandomResizedCrop, random_frame_crop, random_resized_crop
from auscult.errors import ConfigError


@pytest.mark.parametrize("shape", [(3, 16, 40), (2, 2, 16, 33)])
def test_shape_kept_and_seeded(shape):
    x = torch.randn(shape)
    a = random_resized_crop(x, generator=torch.Generator().manual_seed(0))
    b = random_resized_crop(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_unit_scales_without_canvas_are_identity():
    x = torch.randn(2, 8, 12)
    y = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)


def test_canvas_padding_shows_up_as_fill_when_cropping_wide():
    """Time crops wider than the input on a 1.5x canvas include fill columns."""
    x = torch.full((32, 4, 20), 5.0)
    y = random_resized_crop(x, (1.0, 1.0), (1.5, 1.5), (1.0, 1.5), fill=0.0, generator=torch.Generator().manual_seed(1))
    assert (y < 5.0 - 1e-3).any(), "a 1.5x-wide crop on a 1.5x canvas must include padding"
    assert (y >= -1e-6).all() and (y <= 5.0 + 1e-6).all()


def test_module_eval_identity_and_bad_args():
    x = torch.randn(2, 4, 6)
    assert torch.equal(RandomResizedCrop().eval()(x), x)
    with pytest.raises(ConfigError):
        random_resized_crop(torch.randn(4, 6))
    with pytest.raises(ConfigError):
        random_resized_crop(x, canvas_scale=(0.5, 1.0))


def test_frame_crop_takes_contiguous_windows():
    x = torch.arange(3 * 2 * 50, dtype=torch.float32).view(3, 2, 50)
    out, starts = random_frame_crop(x, 7, torch.Generator().manual_seed(0), return_starts=True)
    assert out.shape == (3, 2, 7)
    for i in range(3):
        s = int(starts[i])
        assert torch.equal(out[i], x[i, :, s:s + 7])
    all_starts = random_frame_crop(torch.zeros(2000, 10), 4, torch.Generator().manual_seed(1), return_starts=True)[1]
    assert set(all_starts.tolist()) == set(range(7)), "every start position is reachable"
    with pytest.raises(ConfigError):
        random_frame_crop(x, 51)


def test_crop_box_content_matches_a_direct_crop_and_resize():
    """With a unit canvas and a crop of exactly half the time axis, the output is the bilinear
    resize of some contiguous half of the input: find it by brute force."""
    import torch.nn.functional as F

    x = torch.randn(4, 6, 20)
    y = random_resized_crop(x, (1.0, 1.0), (0.5, 0.5), (1.0, 1.0), generator=torch.Generator().manual_seed(0))
    for i in range(4):
        candidates = [F.interpolate(x[i:i + 1, None, :, s:s + 10], size=(6, 20), mode="bilinear",
                                    align_corners=True)[0, 0] for s in range(11)]
        assert any(torch.allclose(y[i], c, atol=1e-5) for c in candidates)
