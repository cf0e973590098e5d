"""Crops on spectrogram batches: random resized crop (BYOL-A style) and a random T-frame crop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def random_resized_crop(x: torch.Tensor, freq_scale: tuple[float, float] = (0.6, 1.5),
                        time_scale: tuple[float, float] = (0.6, 1.5),
                        canvas_scale: tuple[float, float] = (1.0, 1.5), fill: float = 0.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random resized crop of each spectrogram in a batch, resized back to the input size.

    Each ``[F, T]`` map is centred on a canvas of ``round(F * canvas_scale[0]) x round(T * canvas_scale[1])``
    filled with ``fill`` (0 = the mean of pre-normalised input); a crop of
    ``round(F * U(freq_scale)) x round(T * U(time_scale))`` (clipped to the canvas) is taken at a random
    position and resized back to ``F x T`` with bilinear interpolation. One crop per sample.

    Args:
        x: ``[B, F, T]`` or ``[B, C, F, T]``.
    """
    if x.dim() not in (3, 4):
        raise ConfigError(f"random_resized_crop takes [B, F, T] or [B, C, F, T], got {tuple(x.shape)}")
    for name, (lo, hi) in (("freq_scale", freq_scale), ("time_scale", time_scale)):
        if not 0 < lo <= hi:
            raise ConfigError(f"{name} must satisfy 0 < lo <= hi, got {(lo, hi)}")
    if canvas_scale[0] < 1 or canvas_scale[1] < 1:
        raise ConfigError(f"canvas_scale must be >= 1 in both axes, got {canvas_scale}")
    squeeze = x.dim() == 3
    x4 = x.unsqueeze(1) if squeeze else x
    b, c, f, t = x4.shape
    fc, tc = max(f, round(f * canvas_scale[0])), max(t, round(t * canvas_scale[1]))
    canvas = torch.full((b, c, fc, tc), float(fill), dtype=x4.dtype, device=x4.device)
    f0, t0 = (fc - f) // 2, (tc - t) // 2
    canvas[:, :, f0:f0 + f, t0:t0 + t] = x4
    # per-sample crop boxes, drawn in one go
    fs = freq_scale[0] + (freq_scale[1] - freq_scale[0]) * torch.rand(b, generator=generator, dtype=torch.float64)
    ts = time_scale[0] + (time_scale[1] - time_scale[0]) * torch.rand(b, generator=generator, dtype=torch.float64)
    h = torch.round(f * fs).clamp(1, fc)
    w = torch.round(t * ts).clamp(1, tc)
    fi = torch.floor(torch.rand(b, generator=generator, dtype=torch.float64) * (fc - h + 1)).clamp(max=fc - h)
    ti = torch.floor(torch.rand(b, generator=generator, dtype=torch.float64) * (tc - w + 1)).clamp(max=tc - w)
    # one batched bilinear resample (align_corners=True): output pixel q of F maps to canvas pixel
    # fi + q * (h - 1) / (F - 1); in grid_sample's normalised coordinates that is an affine map.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = (w - 1) / max(tc - 1, 1)
    theta[:, 0, 2] = -1 + (2 * ti + (w - 1)) / max(tc - 1, 1)
    theta[:, 1, 1] = (h - 1) / max(fc - 1, 1)
    theta[:, 1, 2] = -1 + (2 * fi + (h - 1)) / max(fc - 1, 1)
    grid = F.affine_grid(theta.to(canvas.device, canvas.dtype), [b, c, f, t], align_corners=True)
    y = F.grid_sample(canvas, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return y.squeeze(1) if squeeze else y


class RandomResizedCrop(nn.Module):
    """Module form of :func:`random_resized_crop`; identity in eval mode."""

    def __init__(self, freq_scale=(0.6, 1.5), time_scale=(0.6, 1.5), canvas_scale=(1.0, 1.5), fill: float = 0.0):
        super().__init__()
        self.freq_scale, self.time_scale = tuple(freq_scale), tuple(time_scale)
        self.canvas_scale, self.fill = tuple(canvas_scale), fill

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return x
        return random_resized_crop(x, self.freq_scale, self.time_scale, self.canvas_scale, self.fill, generator)


def random_frame_crop(x: torch.Tensor, n_frames: int, generator: torch.Generator | None = None,
                      return_starts: bool = False):
    """Crop ``n_frames`` consecutive frames (last axis) at a random start, independently per sample.

    Args:
        x: ``[B, ..., T]`` with ``T >= n_frames``.
    Returns the ``[B, ..., n_frames]`` crops (and the ``[B]`` start frames if ``return_starts``).
    """
    t = x.shape[-1]
    if n_frames < 1 or n_frames > t:
        raise ConfigError(
            f"cannot crop {n_frames} frames from inputs with {t} frames; choose n_frames between 1 and {t} "
            "or use longer clips"
        )
    starts = torch.randint(t - n_frames + 1, (x.shape[0],), generator=generator)
    idx = (starts[:, None] + torch.arange(n_frames)[None, :]).to(x.device)  # [B, n]
    idx = idx.view(x.shape[0], *([1] * (x.dim() - 2)), n_frames).expand(*x.shape[:-1], n_frames)
    out = torch.gather(x, -1, idx)
    return (out, starts) if return_starts else out
